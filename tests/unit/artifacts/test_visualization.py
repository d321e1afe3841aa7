"""Visualizations: made after an output is saved, recorded, listed, read, collected."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import fsspec
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from mlzen import Client, Materializer, Visualization, pipeline, register_materializer, step
from mlzen.artifacts.builtin import PREVIEW_ROWS
from mlzen.artifacts.fsspec import FsspecArtifactStore
from mlzen.artifacts.visualization import (
    ArtifactVisualization,
    save_visualizations,
    visualization_path,
)
from mlzen.cli.main import cli
from mlzen.errors import ArtifactError
from mlzen.gc import collect_garbage
from mlzen.stack import active_stack

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def frame(rows: int = 3) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": np.arange(rows, dtype="float64") * 1.5,
            "label": ["<script>alert(1)</script>", "a & b", "plain"] * (rows // 3)
            + ["x"] * (rows % 3),
            "count": np.arange(rows),
        }
    )


@step
def make_frame(rows: int = 3) -> Annotated[pd.DataFrame, "table"]:
    return frame(rows)


@pipeline
def frames(rows: int = 3):
    make_frame(rows=rows)


class Boxed:
    """A value whose materializer's visualizations go wrong in the way ``mode`` says."""

    def __init__(self, mode: str) -> None:
        self.mode = mode


class BoxedMaterializer(Materializer):
    def save(self, value, folder):
        (folder / "mode.txt").write_text(value.mode)

    def load(self, folder, data_type):
        return Boxed((folder / "mode.txt").read_text())

    def save_visualizations(self, value, folder):
        if value.mode == "raise":
            raise RuntimeError("the plot library exploded")
        if value.mode == "bad-kind":
            (folder / "plot.gif").write_bytes(b"GIF89a")
            return [Visualization("plot", "gif", "plot.gif")]
        if value.mode == "missing-file":
            return [Visualization("plot", "svg", "plot.svg")]
        (folder / "note.md").write_text("# all good\n")
        (folder / "scratch.tmp").write_text("not declared, not published")
        (folder / "cache").mkdir()
        (folder / "cache" / "tile.png").write_bytes(b"neither")
        return [Visualization("note", "markdown", "note.md")]


@pytest.fixture(autouse=True)
def _boxed_materializer(registry) -> None:
    """Registered in each test's own registry (see conftest.py)."""
    register_materializer(Boxed)(BoxedMaterializer)


@step
def boxed(mode: str = "ok") -> Annotated[Boxed, "boxed"]:
    return Boxed(mode)


@pipeline(enable_cache=False)
def boxing(mode: str = "ok"):
    boxed(mode=mode)


def by_name(visuals: list[ArtifactVisualization]) -> dict[str, ArtifactVisualization]:
    return {v.name: v for v in visuals}


def test_a_dataframe_gets_an_html_preview_and_histograms() -> None:
    run = frames()
    version = run.steps["make_frame"].outputs["table"]
    visuals = by_name(version.visualizations)
    assert sorted(visuals) == ["histograms", "preview"]
    preview, histograms = visuals["preview"], visuals["histograms"]
    assert (preview.kind, histograms.kind) == ("html", "png")
    page = preview.read_bytes().decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>" not in page
    assert "a &amp; b" in page
    assert "3 rows, 3 columns" in page
    assert histograms.read_bytes().startswith(PNG_SIGNATURE)
    assert histograms.path.is_file() and histograms.path.name == "histograms.png"
    assert histograms.uri.startswith(str(Path(active_stack().artifact_store.root)))
    assert preview._repr_html_() == page
    assert histograms._repr_png_() == histograms.read_bytes()
    assert 'src="data:image/png;base64,' in histograms._repr_html_()


def test_the_preview_is_bounded() -> None:
    version = frames(rows=300).steps["make_frame"].outputs["table"]
    page = by_name(version.visualizations)["preview"].read_bytes().decode()
    assert page.count("</tr>") == PREVIEW_ROWS + 1  # and the header row
    assert f"300 rows, 3 columns (first {PREVIEW_ROWS} rows, 3 columns shown)" in page


def test_a_frame_without_numeric_columns_gets_no_histograms(tmp_path: Path) -> None:
    store = active_stack().artifact_store
    from mlzen.artifacts.builtin import PandasMaterializer

    with store.publishing():
        stored = save_visualizations(
            store, pd.DataFrame({"s": ["a", "b"]}), name="t", materializer=PandasMaterializer
        )
    assert [(v.name, v.kind) for v in stored] == [("preview", "html")]
    assert visualization_path(store, stored[0].uri).read_text().count("<td>") == 2


def test_a_cached_step_run_reuses_the_version_and_its_visualizations() -> None:
    first = frames().steps["make_frame"]
    second = frames().steps["make_frame"]
    assert second.status == "cached"
    old, new = first.outputs["table"], second.outputs["table"]
    assert new.id == old.id
    assert [(v.name, v.uri) for v in new.visualizations] == [
        (v.name, v.uri) for v in old.visualizations
    ]


def test_only_declared_files_are_published_and_listed() -> None:
    version = boxing(mode="ok").steps["boxed"].outputs["boxed"]
    (note,) = version.visualizations
    assert (note.name, note.kind, note.media_type) == ("note", "markdown", "text/markdown")
    assert note.read_bytes() == b"# all good\n"
    assert sorted(p.name for p in note.path.parent.iterdir()) == ["note.md"]
    assert "<pre># all good" in note._repr_html_()


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("raise", "RuntimeError: the plot library exploded"),
        ("bad-kind", "the kind 'gif'"),
        ("missing-file", "declared 'plot.svg', which is not a file it wrote"),
    ],
)
def test_a_failing_visualization_never_fails_the_step(mode: str, reason: str) -> None:
    run = boxing(mode=mode)
    assert run.status == "completed"
    step_run = run.steps["boxed"]
    version = step_run.outputs["boxed"]
    assert version.load().mode == mode
    assert version.visualizations == []
    logs = step_run.logs
    assert "Warning: step 'boxed' output 'boxed' has no visualizations" in logs
    assert reason in logs


def test_artifacts_show_lists_visualizations() -> None:
    version = frames().steps["make_frame"].outputs["table"]
    runner = CliRunner()
    shown = runner.invoke(cli, ["artifacts", "show", "table"])
    assert shown.exit_code == 0, shown.output
    section = shown.output.split("\nvisualizations\n", 1)[1]
    lines = section.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "URI"]
    assert [line.split()[:2] for line in lines[1:]] == [["histograms", "png"], ["preview", "html"]]
    as_json = runner.invoke(cli, ["artifacts", "show", "table", "--json"])
    data = json.loads(as_json.output)
    assert data["visualizations"] == [
        {"name": v.name, "kind": v.kind, "uri": v.uri} for v in version.visualizations
    ]


def test_gc_keeps_visualizations_of_live_versions_and_removes_those_of_deleted_ones() -> None:
    kept = frames(rows=3).steps["make_frame"].outputs["table"]
    doomed_run = frames(rows=6)
    doomed = doomed_run.steps["make_frame"].outputs["table"]
    kept_folder = kept.visualizations[0].path.parent
    doomed_folder = doomed.visualizations[0].path.parent
    assert kept_folder != doomed_folder

    report = collect_garbage(Client())
    assert report.count == 0 and report.referenced == 4  # two artifacts, two viz folders

    Client().store.delete_run(doomed_run.id)
    report = collect_garbage(Client())
    assert sorted(g.uri for g in report.garbage) == sorted([doomed.uri, str(doomed_folder)])
    assert not doomed_folder.exists()
    assert kept_folder.is_dir()
    assert kept.visualizations[0].read_bytes().startswith(PNG_SIGNATURE)


def test_visualization_path_refuses_other_uris() -> None:
    with pytest.raises(ArtifactError, match="not the URI of a visualization"):
        visualization_path(active_stack().artifact_store, "/tmp/not/a/visualization.png")


@pytest.fixture
def remote(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    root = f"memory://mlzen-viz-{uuid.uuid4().hex}"
    monkeypatch.setenv("MLZEN_ARTIFACT_ROOT", root)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    yield root
    memory = fsspec.filesystem("memory")
    memory.rm(root.removeprefix("memory://"), recursive=True)


def test_visualizations_in_an_fsspec_store(remote: str) -> None:
    version = frames().steps["make_frame"].outputs["table"]
    store = active_stack().artifact_store
    assert isinstance(store, FsspecArtifactStore)
    visuals = by_name(version.visualizations)
    assert visuals["preview"].uri.startswith(f"{remote}/")
    assert visuals["histograms"].read_bytes().startswith(PNG_SIGNATURE)
    assert b"&lt;script&gt;" in visuals["preview"].read_bytes()
    folder = visuals["preview"].uri.rpartition("/")[0]
    assert folder in store.list_uris()
    assert collect_garbage(Client(), min_age=0).count == 0


def test_visualizations_are_recorded_in_postgresql(postgres_url: str) -> None:
    version = frames().steps["make_frame"].outputs["table"]
    assert sorted(v.name for v in version.visualizations) == ["histograms", "preview"]
    assert collect_garbage(Client()).referenced == 2


def test_visualizations_display_themselves_in_ipython() -> None:
    formatters = pytest.importorskip("IPython.core.formatters")
    version = frames().steps["make_frame"].outputs["table"]
    visuals = by_name(version.visualizations)
    formatter = formatters.DisplayFormatter()
    html_bundle, _ = formatter.format(visuals["preview"])
    assert html_bundle["text/html"] == visuals["preview"].read_bytes().decode()
    png_bundle, _ = formatter.format(visuals["histograms"])
    assert png_bundle["image/png"] == visuals["histograms"].read_bytes()


@step(settings={"visualizations": False})
def plain_frame() -> Annotated[pd.DataFrame, "plain"]:
    return frame()


@pipeline
def plain_frames():
    plain_frame()


def test_a_step_can_switch_its_visualizations_off() -> None:
    version = plain_frames().steps["plain_frame"].outputs["plain"]
    assert version.load().shape == (3, 3)
    assert version.visualizations == []
