"""The local orchestrator: steps in a thread pool, or in worker processes.

Threads are the default: they start in microseconds and share memory, and most ML
steps release the GIL in numpy, pandas or their framework.  A step that holds the GIL
(pure-Python CPU work) can run in a worker process with
``@step(settings={"executor": "processes"})``, or every step of a run with
``MLZEN_EXECUTOR=processes``.  Worker processes are spawned (never forked, which is
unsafe beside threads), open their own store connection, and end with their driver,
even when it is killed with SIGKILL.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal

from mlzen.artifacts.store import ArtifactStore
from mlzen.errors import ConfigError
from mlzen.flavors import Flavor, OrchestratorComponent, deferred_config
from mlzen.orchestrators.base import StepExecutor
from mlzen.runtime.run_step import StepLaunch, StepOutcome, run_step
from mlzen.runtime.worker import (
    die_with_driver,
    pickle_for_worker,
    pickle_invocation,
    run_pickled_step,
)
from mlzen.spec import PipelineSpec
from mlzen.steps import Step
from mlzen.store.metadata import MetadataStore

if TYPE_CHECKING:
    from pydantic import BaseModel

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
        self._pickled_artifacts: bytes | None = None

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
                run_pickled_step,
                self._store.url,
                self._artifacts_blob(),
                pickle_invocation(launch, step),
            )
        assert self._threads is not None, "init() must run before submit()"
        return self._threads.submit(run_step, launch, step, self._store, self._artifacts)

    def _artifacts_blob(self) -> bytes:
        if self._pickled_artifacts is None:
            self._pickled_artifacts = pickle_for_worker(self._artifacts)
        return self._pickled_artifacts

    def _process_pool(self) -> ProcessPoolExecutor:
        if self._processes is None:
            # Sized by how many steps may want a process; workers start only on demand.
            workers = self._max_workers or max(1, min(MAX_THREADS, self._process_steps))
            self._processes = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=die_with_driver,
                initargs=(os.getpid(),),
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


class LocalOrchestrator(OrchestratorComponent):
    """The ``local`` orchestrator component: steps in this machine's threads or processes."""

    def __init__(self, default_executor: str = "threads", max_workers: int = 0) -> None:
        self.default_executor = default_executor
        self.max_workers = max_workers

    def executor(self, store: MetadataStore, artifacts: ArtifactStore) -> StepExecutor:
        return LocalExecutor(
            store, artifacts, default=self.default_executor, max_workers=self.max_workers
        )


def _config_class() -> type[BaseModel]:
    from pydantic import BaseModel, ConfigDict, Field

    class LocalOrchestratorConfig(BaseModel):
        """``executor``: where steps run by default; ``max_workers``: 0 = as the DAG allows."""

        model_config = ConfigDict(extra="forbid")

        executor: Literal["threads", "processes"] = "threads"
        max_workers: int = Field(0, ge=0, strict=True)

    return LocalOrchestratorConfig


class LocalOrchestratorFlavor(Flavor):
    """``orchestrator.local``: a :class:`LocalOrchestrator`."""

    kind = "orchestrator"
    name = "local"
    config_class = deferred_config(_config_class)

    def build(self, config: Any) -> LocalOrchestrator:
        return LocalOrchestrator(config.executor, config.max_workers)
