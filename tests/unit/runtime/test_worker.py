"""A worker belongs to its driver: it dies with it, and importing a user's module to run
a step never starts a pipeline run."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mlzen.errors import ConfigError
from mlzen.runtime import worker
from tests.faults.drivers import alive, sigkill, wait_for


def test_importing_an_unguarded_module_in_a_worker_names_the_guard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = tmp_path / "unguarded_for_worker.py"
    module.write_text(
        textwrap.dedent(
            """
            from mlzen import pipeline, step

            @step
            def one() -> int:
                return 1

            @pipeline
            def at_import():
                one()

            at_import()
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError) as refused, worker._importing_steps():
        importlib.import_module("unguarded_for_worker")
    assert 'if __name__ == "__main__":' in refused.value.message
    assert refused.value.module == str(module)
    assert refused.value.pipeline_name == "at_import"


def test_outside_an_import_a_worker_may_start_a_run() -> None:
    worker.refuse_run_in_worker("anything")  # a step's own body may run a pipeline


WORKER = textwrap.dedent(
    """
    import os, sys, threading, time
    from mlzen.runtime import worker

    if sys.argv[1] == "kernel":
        worker.die_with_driver(os.getppid())
    else:  # how it works where there is no PR_SET_PDEATHSIG
        threading.Thread(target=worker._watch_driver, args=(os.getppid(),)).start()
    print(os.getpid(), flush=True)
    time.sleep(600)
    """
)
DRIVER = "import subprocess, sys, time; subprocess.Popen(sys.argv[1:]); time.sleep(600)"


@pytest.mark.parametrize("how", ["kernel", "watch"])
def test_a_worker_dies_with_its_driver_even_after_sigkill(how: str) -> None:
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, sys.executable, "-c", WORKER, how],
        stdout=subprocess.PIPE,
        text=True,
    )
    worker_pid = 0
    try:
        assert driver.stdout is not None
        worker_pid = int(driver.stdout.readline())
        assert alive(worker_pid)
        sigkill(driver.pid)
        driver.wait()
        wait_for(lambda: not alive(worker_pid), "the worker to die with its driver", 30)
    finally:
        for pid in (driver.pid, worker_pid):
            if pid and alive(pid):
                sigkill(pid)
        driver.communicate()
