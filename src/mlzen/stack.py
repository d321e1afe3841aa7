"""The stack a pipeline runs on: orchestrator + artifact store + metadata store.

Only the ``local`` stack exists so far: steps in local threads or processes, artifacts
in a folder (or any fsspec URL), metadata in SQLite (or any SQLAlchemy URL), all from
``Settings`` and needing no set-up.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from mlzen.config import Settings, load_settings

if TYPE_CHECKING:
    from mlzen.artifacts.store import ArtifactStore
    from mlzen.orchestrators.base import StepExecutor
    from mlzen.store.metadata import MetadataStore


class Stack:
    """The components a run uses, built lazily from settings."""

    def __init__(self, settings: Settings, name: str = "local") -> None:
        self.name = name
        self.settings = settings

    @cached_property
    def metadata_store(self) -> MetadataStore:
        from mlzen.store.metadata import MetadataStore

        return MetadataStore(self.settings.store_url)

    @cached_property
    def artifact_store(self) -> ArtifactStore:
        from mlzen.artifacts.store import artifact_store_for

        return artifact_store_for(self.settings.artifact_root)

    def executor(self) -> StepExecutor:
        """A fresh executor for one run."""
        from mlzen.orchestrators.local import LocalExecutor

        return LocalExecutor(
            self.metadata_store,
            self.artifact_store,
            default=self.settings.executor,
            max_workers=self.settings.max_workers,
        )

    def __repr__(self) -> str:
        return f"<Stack {self.name}: store={self.settings.store_url}>"


def active_stack() -> Stack:
    """The stack runs use unless told otherwise (for now always ``local``)."""
    return Stack(load_settings())
