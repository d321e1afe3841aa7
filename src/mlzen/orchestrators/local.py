"""The local orchestrator: steps in a thread pool, or in worker processes.

Threads are the default: they start in microseconds and share memory, and most ML
steps release the GIL in numpy, pandas or their framework.  A step that holds the GIL
(pure-Python CPU work) can run in a worker process with
``@step(settings={"executor": "processes"})``, or every step of a run with
``MLZEN_EXECUTOR=processes``.  Worker processes are spawned (never forked, which is
unsafe beside threads) and open their own store connection.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from functools import lru_cache
from typing import Any

from mlzen.artifacts.store import ArtifactStore, artifact_store_for
from mlzen.errors import ConfigError
from mlzen.orchestrators.base import StepExecutor
from mlzen.runtime.run_step import StepLaunch, StepOutcome, run_step
from mlzen.spec import PipelineSpec
from mlzen.steps import Step
from mlzen.store.metadata import MetadataStore

EXECUTORS = ("threads", "processes")
MAX_THREADS = 32


class LocalExecutor(StepExecutor):
    """Runs each step in a thread, or in a worker process when the step asks for one."""

    def __init__(
        self,
        store: MetadataStore,
        artifacts: ArtifactStore,
        *,
        default: str = "threads",
        max_workers: int = 0,
    ) -> None:
        self._store = store
        self._artifacts = artifacts
        self._default = default
        self._max_workers = max_workers
        self._threads: ThreadPoolExecutor | None = None
        self._processes: ProcessPoolExecutor | None = None
        self._process_steps = 0

    def init(self, spec: PipelineSpec) -> None:
        self._default = spec.settings.get("executor", self._default)
        for step in spec.steps.values():
            kind = step.settings.get("executor", self._default)
            if kind not in EXECUTORS:
                raise ConfigError(
                    f"Step '{step.id}' asks for executor '{kind}'. Use one of "
                    f"{', '.join(EXECUTORS)} in its settings.",
                    step_name=step.id,
                    argument="executor",
                )
        self._process_steps = sum(
            step.settings.get("executor", self._default) == "processes"
            for step in spec.steps.values()
        )
        workers = self._max_workers or min(MAX_THREADS, len(spec.steps))
        self._threads = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mlzen-step")

    def submit(self, launch: StepLaunch, step: Step) -> Future[StepOutcome]:
        if launch.step.settings.get("executor", self._default) == "processes":
            return self._process_pool().submit(
                run_step_in_worker, self._store.url, self._artifacts.root, _dumps(launch, step)
            )
        assert self._threads is not None, "init() must run before submit()"
        return self._threads.submit(run_step, launch, step, self._store, self._artifacts)

    def _process_pool(self) -> ProcessPoolExecutor:
        if self._processes is None:
            # Sized by how many steps may want a process; workers start only on demand.
            workers = self._max_workers or max(1, min(MAX_THREADS, self._process_steps))
            self._processes = ProcessPoolExecutor(
                max_workers=workers, mp_context=multiprocessing.get_context("spawn")
            )
        return self._processes

    def abort(self) -> None:
        # Threads cannot be killed: a running step finishes in the background, but the
        # store ignores what it reports once its run is stopped.
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
            self._threads = None
        if self._processes is not None:
            workers = list(getattr(self._processes, "_processes", {}).values())
            self._processes.shutdown(wait=False, cancel_futures=True)
            for worker in workers:
                worker.terminate()
            self._processes = None

    def finalize(self) -> None:
        if self._threads is not None:
            self._threads.shutdown(wait=True)
            self._threads = None
        if self._processes is not None:
            self._processes.shutdown(wait=True, cancel_futures=True)
            self._processes = None


def _dumps(launch: StepLaunch, step: Step) -> bytes:
    import cloudpickle

    return cloudpickle.dumps((launch, step))  # type: ignore[no-any-return]


@lru_cache(maxsize=4)
def _worker_stores(store_url: str, artifact_root: str) -> tuple[MetadataStore, ArtifactStore]:
    return MetadataStore(store_url), artifact_store_for(artifact_root)


def run_step_in_worker(store_url: str, artifact_root: str, payload: bytes) -> Any:
    """Entry point of a worker process: unpack one invocation and run it."""
    import cloudpickle

    launch, step = cloudpickle.loads(payload)
    store, artifacts = _worker_stores(store_url, artifact_root)
    return run_step(launch, step, store, artifacts)
