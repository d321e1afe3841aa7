"""The REST API over real HTTP: a real pipeline run's data, paging, filters, deletion."""

from __future__ import annotations

import io
import zipfile

import pandas as pd
import pytest

from mlzen import Client
from tests.unit.server.conftest import LiveServer
from tests.unit.server.pipelines_for_server import training


@pytest.fixture
def two_runs(live: LiveServer) -> tuple[str, str]:
    first = training(rows=20, C=1.0)
    second = training(rows=40, C=0.5)
    return first.name, second.name


def test_health_needs_no_credentials(live: LiveServer) -> None:
    response = live.get("/health", role=None)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["server-timing"].startswith("app;dur=")


def test_a_real_run_shows_up_with_steps_dag_and_metadata(
    live: LiveServer, two_runs: tuple[str, str]
) -> None:
    _, second = two_runs
    runs = live.get("/api/v1/runs").json()
    assert runs["total"] == 2
    assert [r["name"] for r in runs["items"]][0] == second  # newest first
    detail = live.get(f"/api/v1/runs/{second}").json()
    assert detail["status"] == "completed"
    assert detail["parameters"] == {"rows": 40, "test_size": 0.2, "C": 0.5}
    assert {s["step_id"] for s in detail["steps"]} == {"load", "split", "train", "evaluate"}
    assert {n["id"]: n["status"] for n in detail["nodes"]} == {
        "load": "completed",
        "split": "completed",
        "train": "completed",
        "evaluate": "completed",
    }
    edges = {(e["source"], e["target"], e["output"], e["input"]) for e in detail["edges"]}
    assert edges == {
        ("load", "split", "raw", "df"),
        ("split", "train", "train", "train"),
        ("train", "evaluate", "model", "model"),
        ("split", "evaluate", "test", "test"),
    }
    train_step = next(s for s in detail["steps"] if s["step_id"] == "train")
    assert train_step["parameters"] == {"C": 0.5}
    assert train_step["metadata"] == {"C": 0.5}
    assert train_step["inputs"]["train"]["name"] == "train"
    assert train_step["outputs"]["model"]["data_type"] == "builtins.dict"
    assert train_step["duration"] >= 0
    assert len(train_step["cache_key"]) == 64
    by_latest = live.get("/api/v1/runs/latest").json()
    assert by_latest["id"] == detail["id"]


def test_cached_steps_are_marked(live: LiveServer) -> None:
    training(rows=10)
    again = training(rows=10)
    detail = live.get(f"/api/v1/runs/{again.name}").json()
    assert all(node["cached"] for node in detail["nodes"])
    load = next(s for s in detail["steps"] if s["step_id"] == "load")
    assert load["status"] == "cached"
    assert load["cached_from_id"] is not None


def test_runs_are_paged_and_filtered(live: LiveServer) -> None:
    names = [training(rows=5 + i).name for i in range(5)]
    page = live.get("/api/v1/runs", params={"limit": 2, "offset": 1}).json()
    assert page["total"] == 5
    assert page["limit"] == 2
    assert page["offset"] == 1
    assert [r["name"] for r in page["items"]] == [names[3], names[2]]
    assert live.get("/api/v1/runs", params={"status": "failed"}).json()["total"] == 0
    assert live.get("/api/v1/runs", params={"pipeline": "training"}).json()["total"] == 5
    nothing = live.get("/api/v1/runs", params={"pipeline": "nope"}).json()
    assert nothing == {"items": [], "total": 0, "limit": 50, "offset": 0}
    assert live.get("/api/v1/runs", params={"limit": 0}).status_code == 422
    pipelines = live.get("/api/v1/pipelines").json()
    assert pipelines["items"][0]["name"] == "training"
    assert pipelines["items"][0]["run_count"] == 5
    assert live.get("/api/v1/pipelines/training").json()["run_count"] == 5


def test_step_logs_are_read_in_chunks(live: LiveServer, two_runs: tuple[str, str]) -> None:
    detail = live.get(f"/api/v1/runs/{two_runs[1]}").json()
    load = next(s for s in detail["steps"] if s["step_id"] == "load")
    logs = live.get(f"/api/v1/step-runs/{load['id']}/logs").json()
    assert "loading 40 rows" in logs["text"]
    assert logs["complete"] is True
    rest = live.get(
        f"/api/v1/step-runs/{load['id']}/logs", params={"offset": logs["next_offset"]}
    ).json()
    assert rest["text"] == ""
    by_name = live.get(f"/api/v1/runs/{two_runs[1]}/steps/load").json()
    assert by_name["id"] == load["id"]
    missing = live.get(f"/api/v1/runs/{two_runs[1]}/steps/nope")
    assert missing.status_code == 404
    assert missing.json()["error"] == "NotFoundError"


def test_artifact_versions_metadata_preview_files_and_lineage(
    live: LiveServer, two_runs: tuple[str, str]
) -> None:
    artifacts = live.get("/api/v1/artifacts").json()
    assert {a["name"] for a in artifacts["items"]} == {"raw", "train", "test", "model", "score"}
    versions = live.get("/api/v1/artifact-versions", params={"name": "raw"}).json()
    assert versions["total"] == 2
    raw = versions["items"][0]
    assert raw["version"] == 2
    detail = live.get(f"/api/v1/artifact-versions/{raw['id']}").json()
    assert detail["producer"]["step_id"] == "load"
    assert [c["step_id"] for c in detail["consumers"]] == ["split"]
    assert detail["metadata"]  # auto-extracted (rows, columns, ...)

    preview = live.get(f"/api/v1/artifact-versions/{raw['id']}/preview", params={"rows": 3})
    assert preview.json()["kind"] == "table"
    assert preview.json()["columns"] == ["x", "y"]
    assert preview.json()["rows"] == [[0, 0.0], [1, 2.5], [2, 5.0]]
    assert preview.json()["total_rows"] == 40
    assert preview.json()["truncated"] is True

    stored = live.get(f"/api/v1/artifact-versions/{raw['id']}/files").json()
    assert stored
    first = stored[0]["path"]
    content = live.get(f"/api/v1/artifact-versions/{raw['id']}/files/{first}")
    assert content.status_code == 200
    assert len(content.content) == stored[0]["size"]
    archive = live.get(f"/api/v1/artifact-versions/{raw['id']}/download")
    with zipfile.ZipFile(io.BytesIO(archive.content)) as opened:
        assert sorted(opened.namelist()) == sorted(f["path"] for f in stored)
        parquet = [n for n in opened.namelist() if n.endswith(".parquet")]
        if parquet:
            frame = pd.read_parquet(io.BytesIO(opened.read(parquet[0])))
            assert len(frame) == 40

    lineage = live.get(f"/api/v1/artifact-versions/{raw['id']}/lineage").json()
    labels = {n["label"] for n in lineage["nodes"]}
    assert {"raw:2", "load", "split", "train:2", "test:2", "train", "model:2"} <= labels
    score = live.get("/api/v1/artifact-versions", params={"name": "score"}).json()["items"][0]
    text = live.get(f"/api/v1/artifact-versions/{score['id']}/preview").json()
    assert text["kind"] == "text"
    assert float(text["text"]) == pytest.approx(Client().get_artifact_version("score").load())


def test_compare_two_runs(live: LiveServer, two_runs: tuple[str, str]) -> None:
    old, new = two_runs
    diff = live.get("/api/v1/compare", params={"old": old, "new": new}).json()
    assert diff["old"]["name"] == old
    changes = {c["name"]: (c["old"], c["new"]) for c in diff["parameters"]}
    assert changes["C"] == (1.0, 0.5)
    assert changes["rows"] == (20, 40)
    raw = next(a for a in diff["artifacts"] if a["output"] == "raw")
    assert raw["dataframe"]["rows_old"] == 20
    assert raw["dataframe"]["rows_new"] == 40


def test_stacks_are_listed(live: LiveServer) -> None:
    stacks = live.get("/api/v1/stacks").json()
    assert stacks[0]["name"] == "local"
    assert stacks[0]["active"] is True
    local = live.get("/api/v1/stacks/local").json()
    assert local["components"]["artifact_store"]["flavor"] == "local"


def test_an_editor_deletes_a_run_and_a_viewer_cannot(
    live: LiveServer, two_runs: tuple[str, str]
) -> None:
    old, _ = two_runs
    with live.client("viewer") as viewer:
        refused = viewer.delete(f"/api/v1/runs/{old}")
    assert refused.status_code == 403
    with live.client("editor") as editor:
        deleted = editor.delete(f"/api/v1/runs/{old}")
        assert deleted.status_code == 200
        assert deleted.json()["deleted"] == old
        assert editor.get(f"/api/v1/runs/{old}").status_code == 404
    assert live.get("/api/v1/runs").json()["total"] == 1


def test_an_operation_the_server_lacks_is_named_as_a_version_mismatch(live: LiveServer) -> None:
    """Unknown routes answer 404 in the error shape too; the client still reads that as a
    server of another version, not as a missing record."""
    from mlzen.errors import StoreError
    from mlzen.store.operations import Operation
    from mlzen.store.remote import RemoteMetadataStore, close_connections

    def not_on_the_server(store: object) -> None:
        """Not an operation any server has."""

    store = RemoteMetadataStore(live.url, live.keys["viewer"], retry_delays=())
    try:
        with pytest.raises(StoreError) as info:
            store.remote_call(Operation(not_on_the_server, "viewer", True), (), {})
    finally:
        close_connections()
    assert "same version" in info.value.message
    unknown = live.get("/api/v1/no-such-route")
    assert unknown.status_code == 404
    assert set(unknown.json()) == {"error", "detail", "fields"}
