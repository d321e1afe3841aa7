"""Run leases in the metadata store, on SQLite and PostgreSQL: a reader marks a silent run
crashed, its live driver takes it back, and step-run writes need a running run under a
live lease."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from mlzen import Client
from mlzen.errors import LeaseLostError
from mlzen.store import queries
from mlzen.store.metadata import LEASE_LAPSED, MetadataStore, utcnow


@pytest.fixture
def store(store_backend: str) -> MetadataStore:
    return Client().store


def _run(store: MetadataStore, lease_seconds: float = 60) -> str:
    return store.create_run(
        pipeline_name="p",
        run_name=f"r-{time.monotonic_ns()}",
        spec={},
        parameters={},
        stack="local",
        code_version={},
        environment={},
        lease_seconds=lease_seconds,
    )


def _start(store: MetadataStore, run_id: str, step_id: str = "s") -> str:
    return store.start_step_run(
        run_id=run_id,
        step_id=step_id,
        step_name=step_id,
        parameters={},
        config={},
        source="m:s",
        code_hash="c",
        cache_key=f"k-{step_id}",
        cache_key_parts={},
        inputs={},
    )


def _crashed(store: MetadataStore, lease_seconds: float = 0.2) -> tuple[str, str]:
    """A run with one running step that a reader marked crashed once its lease ran out."""
    run_id = _run(store, lease_seconds)
    step_run_id = _start(store, run_id)
    deadline = time.monotonic() + 30
    while store.expire_stale_runs([run_id]) != [run_id]:
        assert time.monotonic() < deadline, "the lease never ran out"
        time.sleep(0.05)
    return run_id, step_run_id


def _statuses(run_id: str) -> tuple[str, dict[str, str]]:
    run = Client().get_pipeline_run(run_id)
    return run.status, {name: s.status for name, s in run.steps.items()}


def test_a_live_driver_takes_its_crashed_run_back(store: MetadataStore) -> None:
    run_id, step_run_id = _crashed(store)
    assert _statuses(run_id) == ("crashed", {"s": "crashed"})
    assert Client().get_pipeline_run(run_id).error == LEASE_LAPSED

    assert store.heartbeat(run_id) is True
    run = Client().get_pipeline_run(run_id)
    assert (run.status, run.error, run.ended_at) == ("running", None, None)
    assert run.steps["s"].status == "running" and run.steps["s"].error is None
    assert store.heartbeat(run_id) is False  # only a renewal now
    store.finish_step_run(step_run_id, status="completed")
    assert _statuses(run_id) == ("running", {"s": "completed"})


def test_a_heartbeat_never_revives_a_run_that_ended(store: MetadataStore) -> None:
    run_id = _run(store)
    _start(store, run_id)
    store.finish_run(run_id, "stopped", "Stopped by the user (KeyboardInterrupt).")
    assert store.heartbeat(run_id) is False
    assert _statuses(run_id) == ("stopped", {"s": "stopped"})


def test_step_writes_for_a_crashed_run_are_refused_until_it_is_taken_back(
    store: MetadataStore,
) -> None:
    run_id, step_run_id = _crashed(store)
    with pytest.raises(LeaseLostError) as refused:
        store.finish_step_run(step_run_id, status="completed")
    assert refused.value.status == "crashed" and refused.value.reclaimable
    assert refused.value.run_id == run_id and refused.value.step_name == "s"
    assert "lease" in refused.value.message and "mlzen runs resume" in refused.value.message
    with pytest.raises(LeaseLostError):
        _start(store, run_id, "other")
    assert _statuses(run_id) == ("crashed", {"s": "crashed"})


def test_step_writes_for_a_run_whose_lease_ran_out_are_refused(store: MetadataStore) -> None:
    run_id = _run(store, lease_seconds=0.2)
    step_run_id = _start(store, run_id)
    deadline = time.monotonic() + 30
    # No reader marks it crashed: the lapsed lease alone refuses the write.
    while utcnow() <= queries.find_run(store, run_id)["heartbeat_at"] + timedelta(seconds=0.2):
        assert time.monotonic() < deadline, "the lease never ran out"
        time.sleep(0.05)
    with pytest.raises(LeaseLostError) as refused:
        store.finish_step_run(step_run_id, status="completed")
    assert refused.value.status == "running" and refused.value.reclaimable
    assert "presumed crashed" in refused.value.message
    store.heartbeat(run_id)
    store.finish_step_run(step_run_id, status="completed")
    assert _statuses(run_id) == ("running", {"s": "completed"})


def test_step_writes_for_a_stopped_run_are_refused_for_good(store: MetadataStore) -> None:
    run_id = _run(store)
    step_run_id = _start(store, run_id)
    store.finish_run(run_id, "stopped", "Stopped by SIGTERM.")
    with pytest.raises(LeaseLostError) as refused:
        store.finish_step_run(step_run_id, status="completed")
    assert refused.value.status == "stopped" and not refused.value.reclaimable
    assert _statuses(run_id) == ("stopped", {"s": "stopped"})


def test_the_driver_ends_a_run_a_reader_marked_crashed(store: MetadataStore) -> None:
    run_id, _ = _crashed(store)
    store.finish_run(run_id, "failed", "boom", {"s": "Traceback: boom"})
    run = Client().get_pipeline_run(run_id)
    assert (run.status, run.error) == ("failed", "boom")
    assert (run.steps["s"].status, run.steps["s"].error) == ("failed", "Traceback: boom")
