"""Garbage collection of the artifact store, and its lock against running pipelines."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import fsspec
import pytest

import mlzen.gc
from mlzen import Client, pipeline, step
from mlzen.artifacts.fsspec import FsspecArtifactStore
from mlzen.artifacts.local import LocalArtifactStore
from mlzen.artifacts.materializer import save_artifact
from mlzen.errors import ArtifactError, NotFoundError
from mlzen.gc import collect_garbage
from mlzen.stack import active_stack
from mlzen.store.metadata import MetadataStore

REPO = Path(__file__).resolve().parents[2]
WAIT = 60  # seconds; a safety net against a hang, never a measured duration

# -- steps for the race tests: pause between publishing outputs and recording them -----

gate = {"published": threading.Event(), "go": threading.Event()}
_record = MetadataStore.finish_step_run


def _pausing_record(self, step_run_id, **kwargs):
    """Runs after a step's outputs are published and before they are recorded."""
    if kwargs.get("status") == "completed":
        gate["published"].set()
        gate["go"].wait(WAIT)
    return _record(self, step_run_id, **kwargs)


@step
def paused(text: str = "x") -> Annotated[str, "paused"]:
    return text


@pipeline(enable_cache=False)
def pausing(text: str = "x"):
    paused(text=text)


@pytest.fixture
def paused_recording(monkeypatch: pytest.MonkeyPatch) -> None:
    """Steps stop between publishing and recording until ``gate["go"]`` is set."""
    gate["published"].clear()
    gate["go"].clear()
    monkeypatch.setattr(MetadataStore, "finish_step_run", _pausing_record)


# -- steps for the concurrency test, run by a writer subprocess --------------------------


def payload(i: int) -> dict:
    return {"i": i, "text": f"payload {i}"}


def _slow_record(self, step_run_id, **kwargs):
    """Widens the window between publishing and recording, where the race would bite."""
    threading.Event().wait(0.01)
    return _record(self, step_run_id, **kwargs)


@step
def produce(i: int = 0) -> Annotated[dict, "payload"]:
    return payload(i)


@step
def derive(value: dict) -> Annotated[list, "derived"]:
    return [value["i"], value["text"].upper()]


@pipeline(enable_cache=False)
def writer(i: int = 0):
    derive(produce(i=i))


def write_runs(count: int) -> None:
    """The writer process: ``count`` runs, each with outputs no earlier run had."""
    MetadataStore.finish_step_run = _slow_record  # type: ignore[method-assign]
    for i in range(count):
        writer(i=i)


@step
def numbers(count: int = 3) -> Annotated[list, "numbers"]:
    return list(range(count))


@pipeline
def simple(count: int = 3):
    numbers(count=count)


def orphan(value: object) -> str:
    """Publish ``value`` in the active artifact store with no version recording it."""
    return save_artifact(active_stack().artifact_store, value, name="orphan").uri


# -- what gc deletes and keeps ---------------------------------------------------------


def test_gc_deletes_unreferenced_folders_and_keeps_referenced_ones() -> None:
    run = simple(count=3)
    kept = run.steps["numbers"].outputs["numbers"]
    garbage = [orphan([1, 2]), orphan({"x": 1})]
    report = collect_garbage(Client(), dry_run=True)
    assert sorted(g.uri for g in report.garbage) == sorted(garbage)
    assert all(Path(uri).is_dir() for uri in garbage)
    assert report.referenced == 1

    report = collect_garbage(active_stack())
    assert report.count == 2 and report.bytes == sum(g.size for g in report.garbage) > 0
    assert not any(Path(uri).exists() for uri in garbage)
    assert kept.load() == [0, 1, 2]
    assert collect_garbage().count == 0


def test_a_folder_is_referenced_by_its_hash_whatever_path_reached_it(project: Path) -> None:
    run = simple()
    version = run.steps["numbers"].outputs["numbers"]
    link = project / "via-link"
    link.symlink_to(Path(version.uri).parents[1])
    store = LocalArtifactStore(link)  # same folders, other URIs
    assert store.list_uris() != [version.uri]

    stack = active_stack()
    stack.artifact_store = store
    report = collect_garbage(stack)
    assert report.count == 0 and report.referenced == 1
    assert version.load() == [0, 1, 2]


def test_leftovers_of_interrupted_writes_and_deletes_go_after_an_hour(monkeypatch) -> None:
    simple()
    store = active_stack().artifact_store
    assert isinstance(store, LocalArtifactStore)
    root = Path(store.root)
    for name in (".staging", ".trash"):
        leftover = root / name / uuid.uuid4().hex / "sub"
        leftover.mkdir(parents=True)
        (leftover / "part").write_bytes(b"12345")
    assert collect_garbage().count == 0
    clock = mlzen.gc._clock
    monkeypatch.setattr(mlzen.gc, "_clock", lambda: clock() + 3601)
    dry = collect_garbage(dry_run=True)
    assert [(g.kind, g.size) for g in dry.garbage] == [("leftover", 5), ("leftover", 5)]
    assert collect_garbage().count == 2
    assert list((root / ".staging").iterdir()) == [] and list((root / ".trash").iterdir()) == []
    assert Client().get_artifact_version("numbers").load() == [0, 1, 2]


def test_delete_leftover_refuses_anything_else(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    saved = save_artifact(store, 1, name="one")
    with pytest.raises(ArtifactError, match="will not be deleted"):
        store.delete_leftover(saved.uri)
    assert Path(saved.uri).is_dir()
    assert store.stat_folder(saved.uri).size == saved.size
    with pytest.raises(NotFoundError):
        store.stat_folder(str(Path(store.root, "00", "0" * 64)))


# -- the lock ---------------------------------------------------------------------------


def in_thread(target, *args, **kwargs) -> tuple[threading.Thread, dict]:
    result: dict = {}

    def run() -> None:
        try:
            result["value"] = target(*args, **kwargs)
        except BaseException as exc:
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def test_publishing_is_shared_and_collecting_waits_for_it(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    waiting = threading.Event()
    with store.publishing():

        def second_writer() -> bool:
            with store.publishing():
                return True

        other, entered = in_thread(second_writer)
        other.join(WAIT)
        assert entered["value"] is True  # a second writer is not held up

        def collect() -> None:
            with store.collecting(on_wait=waiting.set):
                pass

        collector, result = in_thread(collect)
        assert waiting.wait(WAIT)
        assert collector.is_alive()  # blocked while a writer publishes
    collector.join(WAIT)
    assert not collector.is_alive() and "error" not in result


def test_gc_waits_for_a_step_between_publishing_and_recording(paused_recording) -> None:
    """A new output folder is unreferenced until the step records it: gc must wait."""
    run_thread, run = in_thread(pausing, text="fresh")
    assert gate["published"].wait(WAIT)
    waiting = threading.Event()
    gc_thread, gc = in_thread(collect_garbage, on_wait=waiting.set)
    assert waiting.wait(WAIT)
    assert gc_thread.is_alive()
    gate["go"].set()
    run_thread.join(WAIT)
    gc_thread.join(WAIT)
    assert gc["value"].count == 0 and gc["value"].referenced == 1
    assert run["value"].steps["paused"].outputs["paused"].load() == "fresh"


def test_gc_keeps_an_old_orphan_a_step_is_reusing(paused_recording) -> None:
    """Publishing content already stored reuses that folder, unreferenced until recorded."""
    uri = orphan("same")
    run_thread, run = in_thread(pausing, text="same")
    assert gate["published"].wait(WAIT)
    gc_thread, gc = in_thread(collect_garbage)
    gate["go"].set()
    run_thread.join(WAIT)
    gc_thread.join(WAIT)
    assert gc["value"].count == 0
    version = run["value"].steps["paused"].outputs["paused"]
    assert version.uri == uri and version.load() == "same"


def test_without_the_lock_that_race_loses_the_folder(monkeypatch, paused_recording) -> None:
    """The control for the two tests above: they would fail if run_step took no lock."""
    monkeypatch.setattr(LocalArtifactStore, "publishing", lambda self: contextlib.nullcontext())
    uri = orphan("same")
    run_thread, run = in_thread(pausing, text="same")
    assert gate["published"].wait(WAIT)
    # Nothing is referenced yet, which gc refuses by default: force it.
    assert collect_garbage(force=True).count == 1  # the folder the step is about to record
    gate["go"].set()
    run_thread.join(WAIT)
    with pytest.raises(NotFoundError, match=uri):
        run["value"].steps["paused"].outputs["paused"].load()


def test_gc_beside_a_writer_process_never_loses_a_recorded_version(project: Path) -> None:
    """A real writer process runs pipelines while this process collects garbage in a loop,
    re-seeding orphans identical to outputs the writer is about to publish."""
    count = 25
    env = {**os.environ, "MLZEN_PROJECT_ROOT": str(project), "MLZEN_PROGRESS": "0"}
    log = project / "writer.log"
    deleted = 0
    with log.open("w") as stderr:
        writer_process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"from tests.unit.test_gc import write_runs; write_runs({count})",
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            while writer_process.poll() is None:
                for i in range(count):
                    orphan(payload(i))
                    orphan([i, payload(i)["text"].upper()])
                orphan({"never produced": uuid.uuid4().hex})
                # Forced: until the writer records its first version, the store holds
                # only orphans, which gc otherwise refuses to collect.
                deleted += collect_garbage(force=True).count
        finally:
            writer_process.wait(timeout=WAIT)
    assert writer_process.returncode == 0, log.read_text()
    deleted += collect_garbage().count

    versions = Client().list_artifact_versions(limit=1000)
    assert len(versions) == 2 * count
    for version in versions:
        value = version.load()
        assert value in (
            [version.version - 1, f"PAYLOAD {version.version - 1}"],
            payload(version.version - 1),
        )
    assert deleted > 0
    store = active_stack().artifact_store
    assert store.list_uris() == sorted({v.uri for v in versions})


# -- a store without a lock --------------------------------------------------------------


@pytest.fixture
def remote(monkeypatch, tmp_path: Path) -> Iterator[str]:
    root = f"memory://mlzen-gc-{uuid.uuid4().hex}"
    monkeypatch.setenv("MLZEN_ARTIFACT_ROOT", root)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    yield root
    memory = fsspec.filesystem("memory")
    path = root.removeprefix("memory://")
    if memory.exists(path):
        memory.rm(path, recursive=True)


def test_on_a_store_without_a_lock_only_old_folders_go(remote: str, monkeypatch) -> None:
    run = simple()
    store = active_stack().artifact_store
    assert isinstance(store, FsspecArtifactStore) and not store.locking
    garbage = orphan("unreferenced")
    staged = f"{store._root_path}/.staging/{uuid.uuid4().hex}/data.json"
    store._fs.pipe(staged, b"{}")

    report = collect_garbage()
    assert not report.locked and report.min_age == mlzen.gc.UNLOCKED_MIN_AGE
    assert report.count == 0 and report.recent == 1 and report.referenced == 1

    clock = mlzen.gc._clock
    monkeypatch.setattr(mlzen.gc, "_clock", lambda: clock() + 2 * 3600)
    report = collect_garbage()
    assert sorted((g.kind, g.uri) for g in report.garbage) == [
        ("artifact", garbage),
        ("leftover", f"{remote}/.staging/{staged.split('/')[-2]}"),
    ]
    assert store.list_uris() == [run.steps["numbers"].outputs["numbers"].uri]
    assert store.list_leftovers() == []
    assert run.steps["numbers"].outputs["numbers"].load() == [0, 1, 2]


def test_min_age_zero_on_a_store_without_a_lock(remote: str) -> None:
    simple()
    garbage = orphan("unreferenced")
    report = collect_garbage(min_age=0)
    assert [g.uri for g in report.garbage] == [garbage]
    assert not active_stack().artifact_store.exists(garbage)
