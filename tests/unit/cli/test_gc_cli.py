"""`mlzen gc`: what it deletes, what it keeps, what it reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import fsspec
import pytest

import mlzen.gc
from mlzen import Client, pipeline, step
from mlzen.artifacts.materializer import save_artifact
from tests.cli import invoke


@step
def numbers(count: int = 3) -> Annotated[list, "numbers"]:
    return list(range(count))


@step
def total(values: list) -> Annotated[int, "total"]:
    return sum(values)


@pipeline
def arithmetic(count: int = 3):
    total(numbers(count=count))


def gc_json(*args: str) -> dict:
    result = invoke("gc", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def orphans() -> list[str]:
    """Two runs, the second deleted: its two outputs are left unreferenced."""
    arithmetic(count=3)
    doomed = arithmetic(count=4)
    before = set(Client().stack.artifact_store.list_uris())
    assert invoke("runs", "delete", doomed.id, "--yes").exit_code == 0
    kept = {v.uri for v in Client().list_artifact_versions()}
    return sorted(before - kept)


def test_dry_run_lists_the_garbage_and_deletes_nothing(orphans) -> None:
    store = Client().stack.artifact_store
    before = store.list_uris()
    data = gc_json("--dry-run")
    assert data["dry_run"] is True
    assert sorted(g["uri"] for g in data["garbage"]) == orphans
    assert data["count"] == 2 and data["bytes"] == sum(g["size"] for g in data["garbage"]) > 0
    assert store.list_uris() == before
    table = invoke("gc", "--dry-run").output
    assert all(uri in table for uri in orphans)
    assert "Would delete 2 folder(s)" in table


def test_gc_deletes_only_unreferenced_folders_and_reports_bytes(orphans) -> None:
    store = Client().stack.artifact_store
    sizes = {uri: sum(f.stat().st_size for f in Path(uri).iterdir()) for uri in orphans}
    result = invoke("gc")
    assert result.exit_code == 0
    assert "Deleted 2 folder(s)" in result.output
    assert f"({sum(sizes.values())} bytes)" in result.output
    assert "kept 2 referenced" in result.output
    versions = Client().list_artifact_versions()
    assert store.list_uris() == sorted(v.uri for v in versions)
    assert [v.load() for v in sorted(versions, key=lambda v: v.name)] == [[0, 1, 2], 3]
    assert gc_json()["count"] == 0


def test_json_keys_are_stable(orphans) -> None:
    data = gc_json()
    assert set(data) == {
        "artifact_store",
        "dry_run",
        "min_age_seconds",
        "locked",
        "referenced",
        "recent",
        "count",
        "bytes",
        "garbage",
        "young",
        "errors",
        "forced",
    }
    assert set(data["garbage"][0]) == {"uri", "kind", "size"}
    assert data["young"] == [] and data["forced"] is False
    assert data["locked"] is True and data["min_age_seconds"] == 0
    assert data["referenced"] == 2 and data["errors"] == []


def test_min_age_keeps_recent_unreferenced_folders(orphans) -> None:
    data = gc_json("--min-age", "3600")
    assert data["count"] == 0 and data["recent"] == 2
    assert all(Path(uri).is_dir() for uri in orphans)


def test_staging_leftovers_go_once_an_hour_old(project: Path, monkeypatch) -> None:
    arithmetic()
    store = Client().stack.artifact_store
    with store.staging() as folder:
        (folder / "half.bin").write_bytes(b"x" * 100)
        leftover = Path(str(folder) + "-left")
        os.rename(folder, leftover)  # as if the writer had died mid-write
        folder.mkdir()
    assert gc_json()["count"] == 0  # young: might be a running write
    assert leftover.is_dir()
    clock = mlzen.gc._clock
    monkeypatch.setattr(mlzen.gc, "_clock", lambda: clock() + 2 * 3600)
    data = gc_json()
    assert data["garbage"] == [{"uri": str(leftover), "kind": "leftover", "size": 100}]
    assert not leftover.exists()
    assert [v.load() for v in Client().list_artifact_versions("total")] == [3]


def test_gc_in_a_real_process(orphans, project: Path) -> None:
    env = {**os.environ, "MLZEN_PROJECT_ROOT": str(project)}
    command = [sys.executable, "-m", "mlzen", "gc", "--json"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["count"] == 2


@pytest.fixture
def remote(monkeypatch, tmp_path: Path) -> Iterator[str]:
    """An artifact store on fsspec's in-memory filesystem, which has no lock."""
    root = f"memory://mlzen-gc-cli-{uuid.uuid4().hex}"
    monkeypatch.setenv("MLZEN_ARTIFACT_ROOT", root)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    yield root
    memory = fsspec.filesystem("memory")
    if memory.exists(root.removeprefix("memory://")):
        memory.rm(root.removeprefix("memory://"), recursive=True)


def test_a_store_without_a_lock_says_so(remote: str) -> None:
    arithmetic()
    save_artifact(Client().stack.artifact_store, "orphan", name="orphan")
    result = invoke("gc")
    assert result.exit_code == 0
    assert "no lock" in result.output and "3600" in result.output
    assert "Deleted 0 folder(s)" in result.output and "1 recent unreferenced" in result.output
    assert gc_json("--min-age", "0")["count"] == 1
