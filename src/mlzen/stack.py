"""The stack a pipeline runs on: orchestrator + artifact store + metadata store.

The ``local`` stack needs nothing: steps in local threads or processes, artifacts in
``.mlzen/artifacts`` (or any fsspec URL), metadata in SQLite (or any SQLAlchemy URL), all
from ``Settings``. Any component can be replaced by one built from a flavor
(``mlzen.flavors``); the pipeline code does not change.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from mlzen.config import Settings, load_settings

if TYPE_CHECKING:
    from mlzen.artifacts.store import ArtifactStore
    from mlzen.flavors import OrchestratorComponent
    from mlzen.orchestrators.base import StepExecutor
    from mlzen.store.metadata import MetadataStore


class Stack:
    """The components a run uses; each defaults to the local one from settings."""

    def __init__(
        self,
        settings: Settings,
        name: str = "local",
        *,
        orchestrator: OrchestratorComponent | None = None,
        artifact_store: ArtifactStore | None = None,
        store_url: str | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.orchestrator = orchestrator
        self.store_url = store_url or settings.store_url
        if artifact_store is not None:
            self.__dict__["artifact_store"] = artifact_store

    @cached_property
    def metadata_store(self) -> MetadataStore:
        from mlzen.store.metadata import MetadataStore

        return MetadataStore(self.store_url)

    @cached_property
    def artifact_store(self) -> ArtifactStore:
        from mlzen.artifacts.store import artifact_store_for

        return artifact_store_for(self.settings.artifact_root)

    def executor(self) -> StepExecutor:
        """A fresh executor for one run."""
        if self.orchestrator is not None:
            return self.orchestrator.executor(self.metadata_store, self.artifact_store)
        from mlzen.orchestrators.local import LocalExecutor

        return LocalExecutor(
            self.metadata_store,
            self.artifact_store,
            default=self.settings.executor,
            max_workers=self.settings.max_workers,
        )

    def __repr__(self) -> str:
        return f"<Stack {self.name}>"


def active_stack() -> Stack:
    """The stack runs use unless told otherwise (for now always ``local``)."""
    return Stack(load_settings())
