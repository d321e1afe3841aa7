"""Stack component flavors: the classes that turn a stored config into a component.

A flavor names its *kind* (``orchestrator``, ``artifact_store``, ``metadata_store``;
later issues add more) and its *name* (``local``, ``ray``, ``s3``, ``sql``), declares a
pydantic config, and builds the component from it. Flavors are found through the
entry-point group ``mlzen.flavors`` (entry point name ``<kind>.<name>``, value
``module:Class``; see :mod:`mlzen.plugins`); mlzen's own built-ins register there
exactly as an outside package would, in mlzen's pyproject.toml::

    [project.entry-points."mlzen.flavors"]
    "orchestrator.local" = "mlzen.orchestrators.local:LocalOrchestratorFlavor"

The components a flavor builds:

- ``orchestrator``: an ``OrchestratorComponent`` — makes a ``StepExecutor`` per run;
- ``artifact_store``: an ``ArtifactStore`` (``mlzen.artifacts.store``);
- ``metadata_store``: a ``MetadataStoreComponent`` — an SQLAlchemy URL;
- ``model_deployer``: a ``ModelDeployerComponent`` — runs prediction services
  (``mlzen.deployers``; the built-in ``local`` one runs them as local processes);
- ``experiment_tracker`` (optional, the ``local`` stack has none): an
  ``ExperimentTrackerComponent`` — told when a run and each of its steps start and end.

A config is validated with the flavor's ``config_class`` when a component is registered
and again, its secret references resolved, whenever a stack is loaded. Validators may
read ``info.context["project_root"]`` to resolve relative paths against the project.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from mlzen.errors import ConfigError

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError

    from mlzen.artifacts.store import ArtifactStore
    from mlzen.deployers.base import Deployment, DeploymentRequest
    from mlzen.orchestrators.base import StepExecutor
    from mlzen.store.metadata import MetadataStore

#: Kinds a stack may leave out: they have no built-in ``local`` component.
OPTIONAL_KINDS = ("experiment_tracker",)
KINDS = ("orchestrator", "artifact_store", "metadata_store", "model_deployer", *OPTIONAL_KINDS)
ConfigT = TypeVar("ConfigT")


class OrchestratorComponent(ABC):
    """What an orchestrator flavor builds: a factory of executors, one per run."""

    @property
    def is_remote(self) -> bool:
        """True when steps may run on other machines (they then need shared stores)."""
        return False

    @abstractmethod
    def executor(self, store: MetadataStore, artifacts: ArtifactStore) -> StepExecutor:
        """A fresh executor for one run."""

    def check(self) -> None:  # noqa: B027 - optional hook
        """Fail fast, before a run is created, if the orchestrator cannot be reached.

        Raises:
            ConfigError: naming what is at fault and the fix.
        """


@dataclass(frozen=True)
class MetadataStoreComponent:
    """What a metadata-store flavor builds: where runs are recorded."""

    url: str

    def __repr__(self) -> str:
        return "MetadataStoreComponent(url=<hidden>)"

    @property
    def reachable_from_other_machines(self) -> bool:
        return not self.url.startswith("sqlite")


class ExperimentTrackerComponent(ABC):
    """What an experiment-tracker flavor builds: a mirror of runs in a tracking tool.

    The client calls :meth:`start_run` before the first step and :meth:`end_run` after
    the last; ``run_step`` calls :meth:`start_step` before a step runs (in the thread or
    process that runs it) and :meth:`end_step` after. A cached step is started and ended
    at once, with ``cached_from`` set. The component travels to worker processes and Ray
    tasks inside each step's launch, so it must pickle (keep clients out of its state).
    Every method takes keyword-only arguments and ``**kwargs`` for fields added later.
    """

    @abstractmethod
    def start_run(
        self,
        *,
        pipeline_name: str,
        run_id: str,
        run_name: str,
        parameters: dict[str, Any],
        **kwargs: Any,
    ) -> Any:
        """Open the run in the tracker; returns a picklable handle for the other calls."""

    @abstractmethod
    def end_run(self, run: Any, *, status: str, **kwargs: Any) -> None:
        """Close the run ``start_run`` returned; ``status`` is mlzen's (``completed``, ...)."""

    @abstractmethod
    def start_step(
        self,
        run: Any,
        *,
        pipeline_name: str,
        run_id: str,
        run_name: str,
        step_name: str,
        invocation_id: str,
        step_run_id: str,
        parameters: dict[str, Any],
        cached_from: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Open a step's record; the result is ``get_step_context().experiment_tracker``."""

    @abstractmethod
    def end_step(self, step: Any, *, status: str, metadata: dict[str, Any], **kwargs: Any) -> None:
        """Close what ``start_step`` returned, with the metadata the step logged."""


class ModelDeployerComponent(ABC):
    """What a model-deployer flavor builds: starts, checks and stops prediction services.

    The ``deployments`` records are kept by :mod:`mlzen.deployers.deployments`; a
    deployer only runs the services they describe.
    """

    #: The flavor that built it, recorded with each deployment.
    flavor: ClassVar[str]

    @abstractmethod
    def start(self, request: DeploymentRequest) -> Deployment:
        """Launch the service for ``request`` and return at once (status ``starting``)."""

    @abstractmethod
    def wait_ready(self, deployment: Deployment) -> None:
        """Block until the service answers, or raise ``DeploymentError`` with the cause."""

    @abstractmethod
    def live_status(self, deployment: Deployment) -> str:
        """``starting``, ``running``, ``stopped`` or ``crashed``, checked now."""

    @abstractmethod
    def stop(self, deployment: Deployment) -> None:
        """Stop the service and return once its resources (e.g. its port) are free."""

    @abstractmethod
    def logs(self, deployment: Deployment, tail: int | None = None) -> str:
        """The service's output, the last ``tail`` lines if given."""


class deferred_config(Generic[ConfigT]):
    """A flavor's ``config_class`` made by a function on first access.

    The built-in flavors live beside the components they build, in modules every local
    run imports; deferring the pydantic class keeps pydantic out of those imports::

        class LocalArtifactStoreFlavor(Flavor):
            config_class = deferred_config(_config_class)
    """

    def __init__(self, make: Callable[[], ConfigT]) -> None:
        self._make = make
        self._made: ConfigT | None = None

    def __get__(self, instance: object, owner: type | None = None) -> ConfigT:
        if self._made is None:
            self._made = self._make()
        return self._made


class Flavor(ABC):
    """Base class of every flavor (built-in or from an outside package).

    Subclasses set ``kind``, ``name`` and ``config_class`` (a pydantic model) and
    implement :meth:`build`.
    """

    kind: ClassVar[str]
    name: ClassVar[str]
    config_class: ClassVar[type[BaseModel]]

    @abstractmethod
    def build(self, config: Any) -> Any:
        """The component for a validated config (an instance of ``config_class``)."""

    @classmethod
    def option_names(cls) -> list[str]:
        """The config keys this flavor accepts."""
        fields = cls.config_class.model_fields
        return sorted({alias for name, f in fields.items() for alias in (name, f.alias) if alias})

    @classmethod
    def validate_config(
        cls,
        values: Mapping[str, Any],
        *,
        component: str,
        project_root: str | None = None,
        fix: str | None = None,
    ) -> Any:
        """``values`` validated by ``config_class``.

        Args:
            values: The config, secret references already resolved (or still in place
                when only its shape is checked, at registration).
            component: How messages name the component, e.g. ``orchestrator 'ray'``.
            project_root: Passed to validators as ``info.context["project_root"]``.
            fix: The end of an error message; by default, how to register again.

        Raises:
            ConfigError: An unknown key, or a value the flavor rejects; the message names
                the key and the reason and does not quote the input (it may be a
                credential), so validators should not quote it either.
        """
        from pydantic import ValidationError

        model = cls.config_class
        if model.model_config.get("extra") != "allow":
            known = set(cls.option_names())
            unknown = sorted(set(values) - known)
            if unknown:
                raise ConfigError(
                    f"The {cls.kind} flavor '{cls.name}' of {component} has no option "
                    f"'{unknown[0]}'. Its options: {', '.join(sorted(known)) or 'none'}.",
                    component=component,
                    flavor=cls.name,
                    option=unknown[0],
                )
        try:
            return model.model_validate(dict(values), context={"project_root": project_root})
        except ValidationError as exc:
            raise _config_error(cls, component, exc, fix) from None


def _config_error(
    flavor: type[Flavor], component: str, exc: ValidationError, fix: str | None
) -> ConfigError:
    first = exc.errors(include_url=False, include_input=False, include_context=False)[0]
    option = ".".join(str(part) for part in first["loc"]) or "config"
    reason = (
        "it is required"
        if first["type"] == "missing"
        else first["msg"].removeprefix("Value error, ").rstrip(".")
    )
    return ConfigError(
        f"Invalid option '{option}' for {component} (flavor '{flavor.name}'): {reason}. "
        + (fix or f"Fix '--{option}' and register the component again."),
        component=component,
        flavor=flavor.name,
        option=option,
        reason=reason,
    )
