"""A script that runs its pipeline at import, without ``if __name__ == "__main__":``,
with worker processes (issue 10, C): a worker importing it refuses to start another run,
naming the guard, instead of recursing into hundreds of runs and a hang."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from mlzen import Client
from tests.faults.drivers import MLZEN, driver, driver_env, finish

UNGUARDED = textwrap.dedent(
    """
    from mlzen import pipeline, step

    @step(enable_cache=False)
    def one() -> int:
        return 1

    @step(enable_cache=False)
    def two(x: int) -> int:
        return x + 1

    @pipeline
    def unguarded():
        two(one())

    unguarded()
    """
)


@pytest.mark.parametrize("how", ["mlzen run", "script"])
def test_a_worker_importing_an_unguarded_script_refuses_to_start_a_run(
    project: Path, how: str
) -> None:
    script = project / "unguarded.py"
    script.write_text(UNGUARDED)
    env = driver_env(project, executor="processes")
    command = (
        [MLZEN, "run", "unguarded.py:unguarded"]
        if how == "mlzen run"
        else [sys.executable, "unguarded.py"]
    )
    with driver(command, project, env) as process:
        code, stderr = finish(process)

    assert code == (2 if how == "mlzen run" else 1), stderr
    assert 'if __name__ == "__main__":' in stderr
    assert str(script) in stderr
    # The run the script itself started, and no run from any worker.
    assert len(Client().list_pipeline_runs()) == 1


def test_a_guarded_script_runs_in_worker_processes(project: Path) -> None:
    guarded = UNGUARDED.replace("\nunguarded()", '\nif __name__ == "__main__":\n    unguarded()')
    (project / "guarded.py").write_text(guarded)
    env = driver_env(project, executor="processes")
    with driver([MLZEN, "run", "guarded.py:unguarded"], project, env) as process:
        code, stderr = finish(process)

    assert code == 0, stderr
    runs = Client().list_pipeline_runs()
    assert [run.status for run in runs] == ["completed"]
    assert runs[0].steps["two"].outputs["output"].load() == 2
