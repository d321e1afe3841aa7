"""kill -9 of a driver and of its workers, with real processes (issue 10, C).

Worker processes die with their driver, and the store refuses step-run writes for a run
whose driver no longer holds its lease, so a crashed run never gains a completed step.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from mlzen import Client
from tests.faults.drivers import (
    alive,
    driver,
    driver_env,
    finish,
    sigkill,
    wait_for,
    wait_for_file,
)

SCRIPT = textwrap.dedent(
    """
    import os
    import time
    from pathlib import Path

    from mlzen import pipeline, step

    @step(enable_cache=False)
    def first() -> int:
        return 41

    @step(enable_cache=False)
    def slow(x: int) -> int:
        Path("worker.pid").write_text(str(os.getpid()))
        while not Path("release").exists():
            time.sleep(0.02)
        return x + 1

    @step(enable_cache=False)
    def waiting(x: int) -> int:
        return x + 2

    @pipeline
    def lifecycle():
        # With one worker, 'waiting' is queued in the process pool behind 'slow'.
        value = first()
        slow(value)
        waiting(value)

    if __name__ == "__main__":
        lifecycle()
    """
)


def test_workers_die_with_a_killed_driver_and_record_nothing(project: Path) -> None:
    (project / "lifecycle.py").write_text(SCRIPT)
    env = driver_env(project, executor="processes", max_workers="1", lease_seconds="1")
    with driver([sys.executable, "lifecycle.py"], project, env) as process:
        worker = int(wait_for_file(project / "worker.pid"))
        sigkill(process.pid)
        process.wait(timeout=60)
        wait_for(lambda: not alive(worker), "the worker to die with its driver")

    run = wait_for(
        lambda: (r := Client().get_pipeline_run("latest")).status == "crashed" and r,
        "the run to be marked crashed",
    )
    assert run.steps["first"].status == "completed"
    assert run.steps["slow"].status == "crashed"
    assert "waiting" not in run.steps


def test_a_process_that_outlived_its_driver_cannot_record_a_step(project: Path) -> None:
    (project / "lifecycle.py").write_text(SCRIPT)
    env = driver_env(project, executor="processes", max_workers="1", lease_seconds="1")
    with driver([sys.executable, "lifecycle.py"], project, env) as process:
        wait_for_file(project / "worker.pid")
        sigkill(process.pid)
        process.wait(timeout=60)
    client = Client()
    run = wait_for(
        lambda: (r := client.get_pipeline_run("latest")).status == "crashed" and r,
        "the run to be marked crashed",
    )

    # A worker the kernel could not end (no PR_SET_PDEATHSIG outside Linux) runs the
    # step it was given: the store refuses to record it.
    orphan = textwrap.dedent(
        f"""
        import json, sys
        from mlzen import Client
        from mlzen.errors import MlzenError
        from mlzen.runtime.run_step import StepLaunch
        from mlzen.runtime.worker import pickle_for_worker, pickle_invocation
        from mlzen.runtime.worker import run_pickled_step
        import lifecycle

        client = Client()
        spec, steps = lifecycle.lifecycle.build()
        launch = StepLaunch.for_step(
            steps["waiting"],
            run_id={run.id!r},
            run_name={run.name!r},
            pipeline_name="lifecycle",
            step=spec.steps["waiting"],
            inputs={{"x": {run.steps["first"].outputs["output"].id!r}}},
        )
        try:
            outcome = run_pickled_step(
                client.store.url,
                pickle_for_worker(client.stack.artifact_store),
                pickle_invocation(launch, steps["waiting"]),
            )
            print(json.dumps(["recorded", outcome.status]))
        except MlzenError as exc:
            print(json.dumps([type(exc).__name__, exc.status, exc.reclaimable, exc.message]))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", orphan],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert outcome[0] == "LeaseLostError", f"a crashed run recorded a step: {outcome}"
    _, status, reclaimable, message = outcome
    assert status == "crashed" and reclaimable
    assert f"run '{run.name}'" in message and "mlzen runs resume" in message
    assert "waiting" not in client.get_pipeline_run(run.id).steps


def test_a_killed_worker_fails_its_step_and_the_driver_records_the_run(project: Path) -> None:
    (project / "lifecycle.py").write_text(SCRIPT)
    env = driver_env(project, executor="processes")
    with driver([sys.executable, "lifecycle.py"], project, env) as process:
        worker = int(wait_for_file(project / "worker.pid"))
        sigkill(worker)
        code, stderr = finish(process)

    assert code == 1, stderr
    assert "RunFailedError" in stderr and "Internal error" not in stderr
    run = Client().get_pipeline_run("latest")
    assert run.status == "failed"
    assert run.steps["slow"].status == "failed"
    assert "terminated abruptly" in run.steps["slow"].error
    assert run.steps["first"].outputs["output"].load() == 41
