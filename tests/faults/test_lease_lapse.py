"""A driver that outlives its own lease (issue 10, C): a step holds the GIL, so the
heartbeat thread cannot beat, while another process reads the runs and marks the run
crashed. The driver takes its run back and records everything; no internal error."""

from __future__ import annotations

import textwrap
from pathlib import Path

from mlzen import Client
from tests.faults.drivers import MLZEN, driver, driver_env, finish, wait_for, wait_for_file

SCRIPT = textwrap.dedent(
    """
    import ctypes
    import sys
    from pathlib import Path
    from typing import Annotated

    from mlzen import pipeline, step

    @step(enable_cache=False)
    def held() -> Annotated[int, "held"]:
        Path("started").write_text("yes")
        # Calls through PyDLL keep the GIL, and with a switch interval this long no other
        # thread of the driver (its heartbeat) gets it back until "release" exists.
        libc = ctypes.PyDLL(None)
        interval = sys.getswitchinterval()
        sys.setswitchinterval(1000)
        while libc.access(b"release", 0) != 0:
            libc.usleep(20000)
        sys.setswitchinterval(interval)
        return 42

    @step(enable_cache=False)
    def after(value: int) -> int:
        return value + 1

    @pipeline
    def gil():
        after(held())
    """
)


def _run_while_a_reader_marks_it_crashed(project: Path, command: list[str]) -> tuple[int, str]:
    (project / "gil.py").write_text(SCRIPT)
    env = driver_env(project, lease_seconds="1")
    with driver(command, project, env) as process:
        wait_for_file(project / "started")
        client = Client()
        # This process reads the runs while the driver cannot beat: the run is crashed.
        wait_for(
            lambda: client.get_pipeline_run("latest").status == "crashed",
            "a reader to mark the silent run crashed",
        )
        assert client.get_pipeline_run("latest").steps["held"].status == "crashed"
        (project / "release").touch()
        return finish(process)


def test_a_starved_driver_takes_its_run_back_and_records_every_step(project: Path) -> None:
    code, stderr = _run_while_a_reader_marks_it_crashed(project, [MLZEN, "run", "gil.py:gil"])

    assert "Internal error" not in stderr
    assert code == 0, stderr
    assert "took the run back" in stderr and "MLZEN_LEASE_SECONDS" in stderr
    run = Client().get_pipeline_run("latest")
    assert run.status == "completed"
    assert run.error is None
    assert {name: s.status for name, s in run.steps.items()} == {
        "held": "completed",
        "after": "completed",
    }
    assert run.steps["held"].outputs["held"].load() == 42
    assert run.steps["after"].outputs["output"].load() == 43
