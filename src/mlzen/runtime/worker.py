"""Running a step in another process (a local worker process, a Ray task).

The driver pickles the invocation and its artifact store (endpoint and credentials
included, so a worker writes exactly where the driver's stack says); the worker rebuilds
its stores once per process and calls the one ``run_step``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from mlzen.runtime.run_step import StepLaunch, StepOutcome, run_step

if TYPE_CHECKING:
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

    launch, step = cloudpickle.loads(invocation)
    store, artifacts = _stores(store_url, artifacts_blob)
    return run_step(launch, step, store, artifacts)
