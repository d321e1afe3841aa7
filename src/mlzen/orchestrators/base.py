"""The executor interface and the one scheduling loop every orchestrator shares.

An executor only knows how to start ``run_step`` somewhere (a thread, a process, a Ray
task) and hand back a future.  The loop starts each invocation as soon as everything it
depends on has succeeded; after a failure it starts nothing new, lets running steps
finish, and reports every outcome.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlzen.runtime.run_step import FAILED, StepLaunch, StepOutcome
from mlzen.spec import PipelineSpec
from mlzen.steps import Step
from mlzen.store.metadata import MetadataStore

if TYPE_CHECKING:
    from mlzen.flavors import ExperimentTrackerComponent


class StepExecutor(ABC):
    """Starts step invocations somewhere and returns futures of their outcomes."""

    def init(self, spec: PipelineSpec) -> None:  # noqa: B027 - optional hook
        """Prepare for a run of ``spec`` (start pools, connect to a cluster)."""

    @abstractmethod
    def submit(self, launch: StepLaunch, step: Step) -> Future[StepOutcome]:
        """Start ``run_step`` for one invocation."""

    def finalize(self) -> None:  # noqa: B027 - optional hook
        """Release what ``init`` acquired; always called, even after a failure."""

    def abort(self) -> None:  # noqa: B027 - optional hook
        """Stop waiting for running steps (Ctrl-C): cancel queued ones, end workers that
        can be ended. Called before ``finalize``, which must then not block."""


@dataclass
class RunHandle:
    """The identity of a run being driven, as the scheduling loop needs it."""

    run_id: str
    run_name: str
    pipeline_name: str
    reuse: dict[str, dict[str, Any]] = field(default_factory=dict)
    tracker: ExperimentTrackerComponent | None = None
    tracker_run: Any = None


def schedule(
    spec: PipelineSpec,
    steps: dict[str, Step],
    run: RunHandle,
    executor: StepExecutor,
    on_outcome: Callable[[StepOutcome], None] | None = None,
) -> dict[str, StepOutcome]:
    """Run every invocation of ``spec`` whose dependencies succeed; return all outcomes.

    ``on_outcome`` is called in the driver as each invocation ends (progress output).
    """
    order = spec.topological_order()
    waiting_on = {step_id: set(spec.steps[step_id].upstream) for step_id in order}
    children = spec.downstream()
    ready = [step_id for step_id in order if not waiting_on[step_id]]
    outcomes: dict[str, StepOutcome] = {}
    running: dict[Future[StepOutcome], str] = {}
    failed = False
    try:
        executor.init(spec)
        while ready or running:
            while ready and not failed:
                step_id = ready.pop(0)
                launch = StepLaunch.for_step(
                    steps[step_id],
                    run_id=run.run_id,
                    run_name=run.run_name,
                    pipeline_name=run.pipeline_name,
                    step=spec.steps[step_id],
                    inputs={
                        argument: outcomes[ref.step].outputs[ref.output]
                        for argument, ref in spec.steps[step_id].inputs.items()
                    },
                    reuse=run.reuse.get(step_id),
                    tracker=run.tracker,
                    tracker_run=run.tracker_run,
                )
                running[executor.submit(launch, steps[step_id])] = step_id
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                step_id = running.pop(future)
                try:
                    outcome = future.result()
                except Exception:
                    outcome = StepOutcome(step_id, FAILED, error=traceback.format_exc())
                outcomes[step_id] = outcome
                if on_outcome is not None:
                    on_outcome(outcome)
                if not outcome.succeeded:
                    failed = True
                    continue
                for child in sorted(children[step_id]):
                    waiting_on[child].discard(step_id)
                    if not waiting_on[child]:
                        ready.append(child)
    except BaseException:
        executor.abort()
        raise
    finally:
        executor.finalize()
    return outcomes


class Heartbeat:
    """Renews a run's lease from a daemon thread while the run is being driven.

    A beat that finds the run marked ``crashed`` (a reader saw its lease run out while
    something starved this thread) takes it back, and says so on stderr.
    """

    def __init__(
        self, store: MetadataStore, run_id: str, interval: float, run_name: str | None = None
    ) -> None:
        self._store = store
        self._run_id = run_id
        self._run_name = run_name or run_id
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="mlzen-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                reclaimed = self._store.heartbeat(self._run_id)
            except Exception:  # noqa: S112 - a missed beat must not kill the run
                continue
            if reclaimed:
                print(
                    f"mlzen: warning: run '{self._run_name}' was marked crashed: this driver "
                    "sent no heartbeat for longer than the run's lease. The driver is alive "
                    "and took the run back. A step that holds the GIL that long starves the "
                    "heartbeat: run it in a worker process (@step(settings={'executor': "
                    "'processes'})) or raise MLZEN_LEASE_SECONDS.",
                    file=sys.stderr,
                )


class RunTerminated(KeyboardInterrupt):
    """SIGTERM reached the driver: the run stops as it does on Ctrl-C."""


class StopOnSigterm:
    """While a run is driven from the main thread, SIGTERM stops it as Ctrl-C does.

    Within :meth:`armed` (while the steps are driven), the first SIGTERM raises
    :class:`RunTerminated` in the main thread, so the run and its running steps end
    ``stopped`` and worker processes are ended; a SIGTERM that comes while the run's end
    is being recorded waits for it. On leaving, the default action is restored and a
    SIGTERM received is delivered again: the process ends as SIGTERM ends it (exit
    status 143), with its run recorded. A program that handles or ignores SIGTERM
    itself, or a run driven from another thread, keeps its own behaviour.
    """

    def __init__(self) -> None:
        self.received = False
        self._armed = False
        self._installed = False

    def __enter__(self) -> StopOnSigterm:
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        ):
            signal.signal(signal.SIGTERM, self._handle)
            self._installed = True
        return self

    @contextlib.contextmanager
    def armed(self) -> Iterator[None]:
        """Within this block, SIGTERM raises :class:`RunTerminated`."""
        self._armed = True
        try:
            yield
        finally:
            self._armed = False

    def _handle(self, signum: int, frame: object) -> None:
        first = not self.received
        self.received = True
        if first and self._armed:
            self._armed = False
            raise RunTerminated("Stopped by SIGTERM.")

    def __exit__(self, *exc: object) -> None:
        if not self._installed:
            return
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if self.received:
            sys.stdout.flush()
            sys.stderr.flush()
            signal.raise_signal(signal.SIGTERM)
