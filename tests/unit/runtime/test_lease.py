"""Step-run writes under a lease: retried while a live driver may take its run back,
refused once the run's lease has run out again or the run has ended."""

from __future__ import annotations

import threading
import time

import pytest

from mlzen import Client
from mlzen.errors import LeaseLostError
from mlzen.runtime.lease import under_lease
from mlzen.store.metadata import MetadataStore


def _run_with_a_step(store: MetadataStore, lease_seconds: float) -> tuple[str, str]:
    run_id = store.create_run(
        pipeline_name="p",
        run_name=f"r-{time.monotonic_ns()}",
        spec={},
        parameters={},
        stack="local",
        code_version={},
        environment={},
        lease_seconds=lease_seconds,
    )
    step_run_id = store.start_step_run(
        run_id=run_id,
        step_id="s",
        step_name="s",
        parameters={},
        config={},
        source="m:s",
        code_hash="c",
        cache_key="k",
        cache_key_parts={},
        inputs={},
    )
    return run_id, step_run_id


def _run_with_a_crashed_step(store: MetadataStore, lease_seconds: float) -> tuple[str, str]:
    """A run whose lease ran out, marked crashed by a reader, with its running step."""
    run_id, step_run_id = _run_with_a_step(store, lease_seconds)
    deadline = time.monotonic() + 30
    while store.expire_stale_runs([run_id]) != [run_id]:
        assert time.monotonic() < deadline, "the lease never ran out"
        time.sleep(0.05)
    return run_id, step_run_id


def test_a_refused_write_succeeds_once_the_driver_takes_the_run_back() -> None:
    store = Client().store
    # A lease long enough for this thread to beat before the writer gives up.
    run_id, step_run_id = _run_with_a_crashed_step(store, lease_seconds=3)
    attempts: list[int] = []
    refused_once = threading.Event()

    def record() -> dict[str, str]:
        attempts.append(1)
        if len(attempts) > 1:
            refused_once.set()
        return store.finish_step_run(step_run_id, status="completed")

    outcome: list[object] = []
    writer = threading.Thread(target=lambda: outcome.append(under_lease(record)))
    writer.start()
    assert refused_once.wait(30)
    assert store.heartbeat(run_id) is True  # the driver's next beat
    writer.join(30)
    assert outcome == [{}]
    assert Client().get_pipeline_run(run_id).steps["s"].status == "completed"


def test_a_write_nobody_takes_back_is_refused_after_the_lease() -> None:
    store = Client().store
    _, step_run_id = _run_with_a_crashed_step(store, lease_seconds=0.3)
    attempts: list[int] = []

    def record() -> dict[str, str]:
        attempts.append(1)
        return store.finish_step_run(step_run_id, status="completed")

    with pytest.raises(LeaseLostError) as refused:
        under_lease(record)
    assert refused.value.reclaimable and len(attempts) > 1


def test_a_write_for_a_stopped_run_is_refused_at_once() -> None:
    store = Client().store
    run_id, step_run_id = _run_with_a_step(store, lease_seconds=60)
    store.finish_run(run_id, "stopped")
    attempts: list[int] = []

    def record() -> dict[str, str]:
        attempts.append(1)
        return store.finish_step_run(step_run_id, status="completed")

    with pytest.raises(LeaseLostError) as refused:
        under_lease(record)
    assert not refused.value.reclaimable and attempts == [1]
