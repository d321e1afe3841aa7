"""`mlzen artifacts list | show | export`, driven like a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import pytest

from mlzen import Client, Materializer, log_metadata, pipeline, register_materializer, step
from tests.cli import invoke, run_main

REPO = Path(__file__).resolve().parents[3]


class Pair:
    """A value whose materializer writes two files."""

    def __init__(self, left: str, right: str) -> None:
        self.left, self.right = left, right


@register_materializer(Pair)
class PairMaterializer(Materializer):
    def save(self, value, folder):
        (folder / "left.txt").write_text(value.left)
        (folder / "right.txt").write_text(value.right)

    def load(self, folder, data_type):
        return Pair((folder / "left.txt").read_text(), (folder / "right.txt").read_text())


@step
def load(rows: int = 3) -> Annotated[pd.DataFrame, "raw"]:
    log_metadata({"source": "unit test"}, artifact_name="raw")
    return pd.DataFrame({"a": range(rows), "b": [x * 0.5 for x in range(rows)]})


@step
def to_array(df: pd.DataFrame) -> Annotated[np.ndarray, "array"]:
    return df["a"].to_numpy()


@step
def summarise(df: pd.DataFrame, values: np.ndarray) -> Annotated[dict, "summary"]:
    return {"rows": len(df), "total": int(values.sum())}


@step
def pair(rows: int = 3) -> Annotated[Pair, "pair"]:
    return Pair("left" * rows, "right")


@pipeline
def flow(rows: int = 3):
    df = load(rows=rows)
    summarise(df, to_array(df))
    pair(rows=rows)


@pytest.fixture
def runs():
    return flow(rows=3), flow(rows=5)


VERSION_KEYS = {
    "id",
    "name",
    "version",
    "data_type",
    "materializer",
    "size",
    "content_hash",
    "uri",
    "created_at",
    "producer",
}


def test_list_shows_every_artifact_with_latest_version_count_and_size(runs) -> None:
    data = json.loads(invoke("artifacts", "list", "--json").stdout)
    assert [a["name"] for a in data] == ["array", "pair", "raw", "summary"]
    assert set(data[0]) == {
        "name",
        "latest_version",
        "version_count",
        "total_size",
        "created_at",
        "updated_at",
    }
    raw = data[2]
    versions = Client().list_artifact_versions("raw")
    assert raw["latest_version"] == 2 and raw["version_count"] == 2
    assert raw["total_size"] == sum(v.size for v in versions)
    table = invoke("artifacts", "list").output
    assert "raw" in table and "summary" in table and "VERSIONS" in table
    limited = json.loads(invoke("artifacts", "list", "--json", "--limit", "1").stdout)
    assert [a["name"] for a in limited] == ["array"]


def test_list_name_shows_versions_newest_first_with_their_producer(runs) -> None:
    first, second = runs
    data = json.loads(invoke("artifacts", "list", "raw", "--json").stdout)
    assert [v["version"] for v in data] == [2, 1]
    assert set(data[0]) == VERSION_KEYS
    assert data[0]["producer"]["run_name"] == second.name
    assert data[0]["producer"]["step_id"] == "load"
    assert data[1]["producer"]["run_id"] == first.id
    assert data[0]["data_type"].startswith("pandas")
    table = invoke("artifacts", "list", "raw").output
    assert "raw:2" in table and "raw:1" in table and second.name in table
    assert table.index("raw:2") < table.index("raw:1")
    assert data[0]["content_hash"][:12] in table
    one = json.loads(invoke("artifacts", "list", "raw", "--json", "--limit", "1").stdout)
    assert [v["version"] for v in one] == [2]


def test_show_defaults_to_the_latest_and_accepts_version_and_id(runs) -> None:
    latest = json.loads(invoke("artifacts", "show", "raw", "--json").stdout)
    assert latest["version"] == 2
    assert set(latest) == VERSION_KEYS | {"metadata", "consumers", "visualizations"}
    first = json.loads(invoke("artifacts", "show", "raw:1", "--json").stdout)
    assert first["version"] == 1
    by_id = json.loads(invoke("artifacts", "show", first["id"], "--json").stdout)
    assert by_id == first
    assert json.loads(invoke("artifacts", "show", "raw:latest", "--json").stdout) == latest


def test_show_has_metadata_producer_and_consumers(runs) -> None:
    _, second = runs
    data = json.loads(invoke("artifacts", "show", "raw", "--json").stdout)
    assert data["metadata"]["rows"] == 5  # extracted when saved
    assert data["metadata"]["source"] == "unit test"  # logged by the step
    assert data["producer"] == {
        "run_id": second.id,
        "run_name": second.name,
        "step_id": "load",
        "step_run_id": second.steps["load"].id,
    }
    consumers = {(c["step_id"], c["input_name"]) for c in data["consumers"]}
    assert consumers == {("to_array", "df"), ("summarise", "df")}
    assert {c["run_name"] for c in data["consumers"]} == {second.name}
    text = invoke("artifacts", "show", "raw").output
    for expected in (
        "raw:2",
        "PandasMaterializer",
        data["content_hash"],
        data["uri"],
        "unit test",
        second.name,
        "to_array",
    ):
        assert expected in text


@pytest.mark.parametrize(
    ("args", "culprit"),
    [
        (["show", "nope"], "'nope'"),
        (["show", "raw:9"], "version 9"),
        (["show", "raw:two"], "'two'"),
        (["show", ":3"], "':3'"),
        (["list", "nope"], "'nope'"),
        (["export", "nope:1", "out.json"], "'nope'"),
        (["export", "raw:x", "out.json"], "'x'"),
    ],
)
def test_user_errors_exit_2_with_one_line_naming_the_culprit(runs, args, culprit) -> None:
    code, stdout, stderr = run_main("artifacts", *args)
    assert code == 2
    assert stderr.startswith("Error:") and culprit in stderr
    assert len(stderr.strip().splitlines()) == 1
    assert "Traceback" not in stderr and stdout == ""


def test_export_writes_files_that_pandas_numpy_and_json_open(runs, tmp_path: Path) -> None:
    frame_path, array_path = tmp_path / "raw.parquet", tmp_path / "out" / "array.npy"
    assert invoke("artifacts", "export", "raw", str(frame_path)).exit_code == 0
    assert invoke("artifacts", "export", "array:1", str(array_path)).exit_code == 0
    folder = tmp_path / "into"
    folder.mkdir()
    result = invoke("artifacts", "export", "summary", str(folder))
    assert result.stdout.strip() == str(folder / "data.json")

    pd.testing.assert_frame_equal(
        pd.read_parquet(frame_path), Client().get_artifact_version("raw").load()
    )
    np.testing.assert_array_equal(np.load(array_path), np.arange(3))
    assert json.loads((folder / "data.json").read_text()) == {"rows": 5, "total": 10}


def test_export_into_a_path_ending_in_a_slash_makes_that_folder(runs, tmp_path: Path) -> None:
    result = invoke("artifacts", "export", "summary:1", f"{tmp_path}/new/")
    assert result.exit_code == 0
    assert json.loads((tmp_path / "new" / "data.json").read_text()) == {"rows": 3, "total": 3}


def test_export_of_a_multi_file_artifact_makes_a_folder(runs, tmp_path: Path) -> None:
    target = tmp_path / "pair"
    result = invoke("artifacts", "export", "pair:2", str(target))
    assert result.exit_code == 0
    assert sorted(p.name for p in target.iterdir()) == ["left.txt", "right.txt"]
    assert (target / "left.txt").read_text() == "left" * 5
    file = tmp_path / "file.txt"
    file.write_text("mine")
    code, _, stderr = run_main("artifacts", "export", "pair", str(file))
    assert code == 2 and str(file) in stderr and "2 files" in stderr


def test_export_refuses_to_overwrite_without_force(runs, tmp_path: Path) -> None:
    target = tmp_path / "summary.json"
    target.write_text("keep me")
    code, _, stderr = run_main("artifacts", "export", "summary", str(target))
    assert code == 2 and str(target) in stderr and "--force" in stderr
    assert target.read_text() == "keep me"
    assert invoke("artifacts", "export", "summary", str(target), "--force").exit_code == 0
    assert json.loads(target.read_text()) == {"rows": 5, "total": 10}
    existing = tmp_path / "pair"
    (existing).mkdir()
    (existing / "left.txt").write_text("keep me too")
    code, _, stderr = run_main("artifacts", "export", "pair", str(existing))
    assert code == 2 and "left.txt" in stderr
    assert (existing / "left.txt").read_text() == "keep me too"


def test_export_verifies_the_content_hash(runs, tmp_path: Path) -> None:
    version = Client().get_artifact_version("summary")
    (Path(version.uri) / "data.json").write_text('{"rows": 0}')
    target = tmp_path / "summary.json"
    code, _, stderr = run_main("artifacts", "export", "summary", str(target))
    assert code == 2 and "corrupted" in stderr and version.uri in stderr
    assert not target.exists()


def test_list_json_in_a_real_process(runs, project: Path) -> None:
    env = {**os.environ, "MLZEN_PROJECT_ROOT": str(project)}
    command = [sys.executable, "-m", "mlzen", "artifacts", "list", "--json"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert [a["name"] for a in json.loads(result.stdout)] == ["array", "pair", "raw", "summary"]
    missing = subprocess.run(
        [*command[:-1], "nope", "--json"], env=env, capture_output=True, text=True, check=False
    )
    assert missing.returncode == 2
    assert (
        missing.stdout == "" and missing.stderr.startswith("Error:") and "'nope'" in missing.stderr
    )


def test_empty_project_lists_nothing() -> None:
    assert json.loads(invoke("artifacts", "list", "--json").stdout) == []
    assert "No artifacts yet" in invoke("artifacts", "list").output


@pytest.mark.parametrize(
    "command", [["artifacts"], *[["artifacts", c] for c in ("list", "show", "export")], ["gc"]]
)
def test_every_command_has_a_summary_and_an_example(command) -> None:
    result = invoke(*command, "--help")
    assert result.exit_code == 0
    assert f"Example: mlzen {' '.join(command)}" in result.output


def test_command_modules_import_nothing_heavy() -> None:
    probe = (
        "import sys, json, mlzen.cli.artifacts, mlzen.cli.gc; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    assert not loaded & {"sqlalchemy", "pandas", "numpy", "pyarrow", "rich", "fsspec", "blake3"}
