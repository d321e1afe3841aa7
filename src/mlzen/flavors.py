"""Stack component flavors: the classes that turn a stored config into a component.

A flavor names its *kind* (``orchestrator``, ``artifact_store``, ``metadata_store``;
later issues add more) and its *name* (``local``, ``ray``, ``s3``, ``sql``), declares a
pydantic config, and builds the component from it. Flavors are found through the
entry-point group ``mlzen.flavors`` (entry point name ``<kind>.<name>``, value
``module:Class``); mlzen's own built-ins register there exactly as an outside package
would, in mlzen's pyproject.toml.

The components a flavor builds:

- ``orchestrator``: an ``OrchestratorComponent`` — makes a ``StepExecutor`` per run;
- ``artifact_store``: an ``ArtifactStore`` (``mlzen.artifacts.store``);
- ``metadata_store``: a ``MetadataStoreComponent`` — an SQLAlchemy URL.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from pydantic import BaseModel

    from mlzen.artifacts.store import ArtifactStore
    from mlzen.orchestrators.base import StepExecutor
    from mlzen.store.metadata import MetadataStore

ENTRY_POINT_GROUP = "mlzen.flavors"
KINDS = ("orchestrator", "artifact_store", "metadata_store")


class OrchestratorComponent(ABC):
    """What an orchestrator flavor builds: a factory of executors, one per run."""

    @property
    def is_remote(self) -> bool:
        """True when steps may run on other machines (they then need shared stores)."""
        return False

    @abstractmethod
    def executor(self, store: MetadataStore, artifacts: ArtifactStore) -> StepExecutor:
        """A fresh executor for one run."""


@dataclass(frozen=True)
class MetadataStoreComponent:
    """What a metadata-store flavor builds: where runs are recorded."""

    url: str

    @property
    def reachable_from_other_machines(self) -> bool:
        return not self.url.startswith("sqlite")


class Flavor(ABC):
    """Base class of every flavor (built-in or from an outside package)."""

    kind: ClassVar[str]
    name: ClassVar[str]
    config_class: ClassVar[type[BaseModel]]

    @abstractmethod
    def build(self, config: Any) -> Any:
        """The component for a validated config (an instance of ``config_class``)."""
