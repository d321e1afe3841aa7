"""SIGTERM to a driver stops its run as Ctrl-C does (issue 10, C): the run and its running
steps end ``stopped``, worker processes end, and the process exits as SIGTERM ends it."""

from __future__ import annotations

import signal
import sys
import textwrap
from pathlib import Path

import pytest

from mlzen import Client
from tests.faults.drivers import MLZEN, alive, driver, driver_env, finish, wait_for, wait_for_file

SCRIPT = textwrap.dedent(
    """
    import os
    import time
    from pathlib import Path

    from mlzen import pipeline, step

    @step(enable_cache=False)
    def first() -> int:
        return 1

    @step(enable_cache=False)
    def slow(x: int) -> int:
        Path("worker.pid").write_text(str(os.getpid()))
        while True:
            time.sleep(0.05)

    @pipeline
    def terminated():
        slow(first())

    if __name__ == "__main__":
        terminated()
    """
)


@pytest.mark.parametrize("executor", ["threads", "processes"])
@pytest.mark.parametrize("how", ["script", "mlzen run"])
def test_sigterm_stops_the_run_as_ctrl_c_does(project: Path, executor: str, how: str) -> None:
    (project / "terminated.py").write_text(SCRIPT)
    # A lease far longer than the test: only the driver's own handling ends the run.
    env = driver_env(project, executor=executor, lease_seconds="600")
    command = (
        [sys.executable, "terminated.py"]
        if how == "script"
        else [MLZEN, "run", "terminated.py:terminated"]
    )
    with driver(command, project, env) as process:
        worker = int(wait_for_file(project / "worker.pid"))
        process.send_signal(signal.SIGTERM)
        code, stderr = finish(process)
        wait_for(lambda: not alive(worker), "the step's worker to end")

    assert code == -signal.SIGTERM, stderr
    assert "stopped by SIGTERM" in stderr
    run = Client().get_pipeline_run("latest")
    assert run.status == "stopped"
    assert run.error == "Stopped by SIGTERM."
    assert run.steps["slow"].status == "stopped"
    assert run.steps["first"].status == "completed"
