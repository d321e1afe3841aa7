"""Running a step in another process (a local worker process, a Ray task).

The driver pickles the invocation and its artifact store (endpoint and credentials
included, so a worker writes exactly where the driver's stack says); the worker rebuilds
its stores once per process and calls the one ``run_step``.

A worker belongs to its driver: a local worker process ends when its driver does
(:func:`die_with_driver`), and a worker importing a user's module to run a step refuses
to start a pipeline run (:func:`refuse_run_in_worker`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from functools import lru_cache
from typing import TYPE_CHECKING

from mlzen.errors import ConfigError
from mlzen.runtime.run_step import StepLaunch, StepOutcome, run_step

if TYPE_CHECKING:
    from types import FrameType

    from mlzen.artifacts.store import ArtifactStore
    from mlzen.steps import Step
    from mlzen.store.metadata import MetadataStore


def pickle_for_worker(value: object) -> bytes:
    """``value`` as cloudpickle bytes (steps defined in ``__main__`` travel by value)."""
    import cloudpickle

    return cloudpickle.dumps(value)  # type: ignore[no-any-return]


def pickle_invocation(launch: StepLaunch, step: Step) -> bytes:
    """One invocation, ready for :func:`run_pickled_step`."""
    return pickle_for_worker((launch, step))


@lru_cache(maxsize=8)
def _stores(store_url: str, artifacts_blob: bytes) -> tuple[MetadataStore, ArtifactStore]:
    import cloudpickle

    from mlzen.store import open_metadata_store

    # A server store's URL carries its API key, so a worker reaches the same server.
    return open_metadata_store(store_url), cloudpickle.loads(artifacts_blob)


def run_pickled_step(store_url: str, artifacts_blob: bytes, invocation: bytes) -> StepOutcome:
    """Entry point in the worker: unpack one invocation and run it with cached stores."""
    import cloudpickle

    with _importing_steps():
        launch, step = cloudpickle.loads(invocation)
    store, artifacts = _stores(store_url, artifacts_blob)
    return run_step(launch, step, store, artifacts)


# -- a worker belongs to its driver ----------------------------------------------------

_PR_SET_PDEATHSIG = 1
#: Seconds between checks that the driver is alive, where the kernel cannot tell.
WATCH_INTERVAL = 0.5
_importing = 0


@contextlib.contextmanager
def _importing_steps() -> Iterator[None]:
    """Unpickling an invocation imports the steps' modules: no run may start meanwhile."""
    global _importing
    _importing += 1
    try:
        yield
    finally:
        _importing -= 1


def refuse_run_in_worker(pipeline_name: str) -> None:
    """Refuse to start a pipeline run while a worker imports the user's module.

    A script that calls its pipeline at import, outside ``if __name__ == "__main__":``,
    would start a run in every worker process that imports it to run a step (after
    ``mlzen run``, or in ``multiprocessing``'s spawn of the main module), and each of
    those runs more workers.

    Raises:
        ConfigError: naming the module and the guard.
    """
    spawning = False
    process_module = sys.modules.get("multiprocessing.process")
    if process_module is not None:
        spawning = bool(getattr(process_module.current_process(), "_inheriting", False))
    if not (_importing or spawning):
        return
    where = _module_being_imported()
    raise ConfigError(
        f"Pipeline '{pipeline_name}' was started while a worker process imported {where} "
        "to run a step: the module starts a run when it is imported, so every worker "
        "would start another run, and its workers more. Put the pipeline call under "
        f'`if __name__ == "__main__":` in {where}.',
        pipeline_name=pipeline_name,
        module=where,
    )


def _module_being_imported() -> str:
    """The file (or name) of the innermost module whose top level is running: the one
    that called the pipeline."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "<module>":
            return str(frame.f_globals.get("__file__") or frame.f_globals.get("__name__"))
        frame = frame.f_back
    return "the module that calls the pipeline"


def die_with_driver(driver_pid: int) -> None:
    """Worker-process initializer: end this process as soon as its driver is gone.

    A driver killed with SIGKILL cannot stop its workers, and a worker that outlives it
    would go on running queued steps for a run that has crashed. On Linux the kernel
    kills the worker with its parent (``PR_SET_PDEATHSIG``); elsewhere a thread checks
    that the parent is still the driver.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0:
            if os.getppid() != driver_pid:  # the driver died before prctl took effect
                os._exit(1)
            return
    threading.Thread(
        target=_watch_driver, args=(driver_pid,), name="mlzen-driver-watch", daemon=True
    ).start()


def _watch_driver(driver_pid: int) -> None:
    while os.getppid() == driver_pid:
        time.sleep(WATCH_INTERVAL)
    os._exit(1)
