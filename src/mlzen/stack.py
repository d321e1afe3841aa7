"""The stack a pipeline runs on: orchestrator + artifact store + metadata store.

The ``local`` stack needs nothing: steps in local threads or processes, artifacts in
``.mlzen/artifacts`` (or any fsspec URL), metadata in SQLite (or any SQLAlchemy URL), all
from ``Settings``. Any component can be replaced by one built from a flavor
(``mlzen.flavors``); the pipeline code does not change.

Registered components and stacks live in the project's own metadata store
(``Settings.store_url``), even when a stack records its runs in another one. Which stack
is active: ``MLZEN_STACK`` (the ``stack`` setting), else the one ``mlzen stack set``
stored, else ``local``. Each kind also has an implicit component named ``local``: the
one the ``local`` stack uses, from settings, so a stack may mix it with registered ones
(``mlzen stack register shared -o local -a s3``). A project logged in to a team server
(``mlzen login``) records runs there: the server is then its ``local`` metadata store.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

from mlzen.config import Settings, load_settings
from mlzen.errors import ConfigError, MlzenError, NotFoundError
from mlzen.flavors import KINDS, OPTIONAL_KINDS
from mlzen.store import runs_store_url

if TYPE_CHECKING:
    from mlzen.artifacts.identity import StoreIdentity
    from mlzen.artifacts.store import ArtifactStore
    from mlzen.flavors import (
        ExperimentTrackerComponent,
        Flavor,
        ModelDeployerComponent,
        OrchestratorComponent,
    )
    from mlzen.orchestrators.base import StepExecutor
    from mlzen.store.metadata import MetadataStore

LOCAL = "local"


class Stack:
    """The components a run uses; each defaults to the local one from settings.

    Attributes:
        components: The name of the component of each kind (``local`` for a default).
    """

    def __init__(
        self,
        settings: Settings,
        name: str = LOCAL,
        *,
        orchestrator: OrchestratorComponent | None = None,
        artifact_store: ArtifactStore | None = None,
        store_url: str | None = None,
        components: Mapping[str, str] | None = None,
        model_deployer: ModelDeployerComponent | None = None,
        experiment_tracker: ExperimentTrackerComponent | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.orchestrator = orchestrator
        # None: the local deployer (mlzen.deployers.deployments.deployer_for builds it).
        self.model_deployer = model_deployer
        self.store_url = store_url or runs_store_url(settings)
        # Optional kinds (the experiment tracker) have no local component: None is none.
        self.experiment_tracker = experiment_tracker
        self.components = {
            kind: (components or {}).get(kind, LOCAL)
            for kind in KINDS
            if kind not in OPTIONAL_KINDS or kind in (components or {})
        }
        if artifact_store is not None:
            self.__dict__["artifact_store"] = artifact_store

    @cached_property
    def metadata_store(self) -> MetadataStore:
        from mlzen.store import open_metadata_store

        return open_metadata_store(self.store_url)

    @cached_property
    def artifact_store(self) -> ArtifactStore:
        from mlzen.artifacts.store import artifact_store_for

        return artifact_store_for(self.settings.artifact_root)

    def claim_artifact_store(self) -> StoreIdentity | None:
        """The artifact store's identity, paired with this stack's metadata store.

        On the store's first use it gets an id, owned by this stack's metadata store, and
        the metadata store records it; versions recorded before stores had ids whose URI
        lies inside the store are adopted then. Runs call it before their first step.
        ``None`` for a store that cannot keep an identity (versions are then recorded
        without one, and read only where their URI lies inside the reading store).
        """
        from mlzen.artifacts.identity import claim_store, record_user, store_identity
        from mlzen.store import identity as pairing

        artifacts = self.artifact_store
        identity = store_identity(artifacts)
        if identity is None and not _keeps_identity(artifacts):
            return None
        key = (self.store_url, artifacts.root)
        if identity is not None and key in _paired:
            return identity
        metadata = self.metadata_store
        metadata_id = pairing.metadata_store_id(metadata)
        if identity is None:
            identity, _ = claim_store(artifacts, owner=metadata_id, owner_url=shown_url(metadata))
        if identity.owner != metadata_id:
            record_user(artifacts, metadata_id, shown_url(metadata))
        if pairing.register_artifact_store(metadata, identity.id, artifacts.root):
            _adopt_legacy_versions(metadata, artifacts, identity.id)
        _paired.add(key)
        return identity

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

    def validate(self) -> None:
        """Fail fast, before a run starts, if this stack cannot work.

        A remote orchestrator needs an artifact store and a metadata store that other
        machines reach (not a local folder, not SQLite); the orchestrator's ``check()``
        runs (e.g. Ray: its address answers, within a timeout); an artifact store with a
        ``check()`` (e.g. S3: the bucket exists and is writable) runs it.

        Raises:
            ConfigError: Names the stack, the component at fault and the fix.
        """
        orchestrator = self.orchestrator
        names = self.components
        if orchestrator is not None and orchestrator.is_remote:
            remote = (
                f"Stack '{self.name}' cannot run: its orchestrator '{names['orchestrator']}' "
                "runs steps on other machines, but"
            )
            artifacts = self.artifact_store
            if not _reachable_from_other_machines(artifacts):
                raise ConfigError(
                    f"{remote} its artifact store '{names['artifact_store']}' keeps artifacts "
                    f"in {artifacts.root} on this machine, which they cannot reach. Register "
                    "a shared one "
                    "(e.g. 'mlzen component register artifact_store s3 --flavor s3 ...') and "
                    f"use it: 'mlzen stack register {self.name} --replace "
                    f"-o {names['orchestrator']} -a s3 -m {names['metadata_store']}'.",
                    stack=self.name,
                    kind="artifact_store",
                    component=names["artifact_store"],
                )
            from mlzen.flavors import MetadataStoreComponent

            if not MetadataStoreComponent(self.store_url).reachable_from_other_machines:
                raise ConfigError(
                    f"{remote} its metadata store '{names['metadata_store']}' is an SQLite "
                    "file, which they cannot reach. Register a shared one (e.g. 'mlzen "
                    "component register metadata_store pg --flavor sql --url "
                    "postgresql+psycopg://user@host/db') and use it: 'mlzen stack register "
                    f"{self.name} --replace -o {names['orchestrator']} "
                    f"-a {names['artifact_store']} -m pg'.",
                    stack=self.name,
                    kind="metadata_store",
                    component=names["metadata_store"],
                )
        if orchestrator is not None:
            try:
                orchestrator.check()
            except ConfigError as exc:
                raise ConfigError(
                    f"Stack '{self.name}', orchestrator '{names['orchestrator']}': {exc.message}",
                    **{
                        **exc.fields,
                        "stack": self.name,
                        "kind": "orchestrator",
                        "component": names["orchestrator"],
                    },
                ) from exc
        check = getattr(self.artifact_store, "check", None)
        if callable(check):
            try:
                check()
            except MlzenError:
                raise
            except Exception as exc:
                raise ConfigError(
                    f"Stack '{self.name}' cannot run: its artifact store "
                    f"'{names['artifact_store']}' failed its check: {type(exc).__name__}: "
                    f"{exc}. Check the store's configuration "
                    f"('mlzen component describe artifact_store {names['artifact_store']}').",
                    stack=self.name,
                    kind="artifact_store",
                    component=names["artifact_store"],
                ) from exc

    def __repr__(self) -> str:
        return f"<Stack {self.name}>"


# (metadata store URL, artifact store root) pairs this process has registered.
_paired: set[tuple[str, str]] = set()


def _keeps_identity(store: ArtifactStore) -> bool:
    from mlzen.artifacts.store import ArtifactStore

    return type(store).create_store_file is not ArtifactStore.create_store_file


def shown_url(metadata: MetadataStore) -> str:
    """Where a metadata store is, without credentials: a server's URL or the database's."""
    from mlzen.store.metadata import safe_url

    server = getattr(metadata, "server_url", None)
    return str(server) if server else safe_url(metadata.url)


def _adopt_legacy_versions(
    metadata: MetadataStore, artifacts: ArtifactStore, store_id: str
) -> None:
    """Give the versions recorded before stores had ids, whose URI lies inside
    ``artifacts``, its id (the first time a metadata store records versions there)."""
    from mlzen.store import identity as pairing

    after = ""
    while True:
        rows = pairing.legacy_versions(metadata, after)
        if not rows:
            return
        ours = [row["id"] for row in rows if artifacts.contains(row["uri"])]
        if ours:
            pairing.adopt_versions(metadata, store_id, ours)
        after = rows[-1]["id"]


def _reachable_from_other_machines(store: ArtifactStore) -> bool:
    declared = getattr(store, "reachable_from_other_machines", None)
    if isinstance(declared, bool):
        return declared
    root = str(store.root)
    protocol = root.split("://", 1)[0] if "://" in root else "file"
    return protocol not in ("file", "local", "memory")


def _registry(settings: Settings) -> MetadataStore:
    """The store that holds the registry: always the project's own."""
    from mlzen.store.metadata import MetadataStore

    return MetadataStore(settings.store_url)


def active_stack_name(settings: Settings | None = None) -> str:
    """``MLZEN_STACK`` (the ``stack`` setting), else the stored active stack, else local."""
    settings = settings or load_settings()
    if settings.stack:
        return settings.stack
    from mlzen.store import queries
    from mlzen.store.registry import ACTIVE_STACK

    return queries.get_project_setting(_registry(settings), ACTIVE_STACK) or LOCAL


def active_stack() -> Stack:
    """The stack runs use unless told otherwise (see the module docstring)."""
    settings = load_settings()
    name = active_stack_name(settings)
    if name == LOCAL:
        return Stack(settings)
    try:
        return load_stack(name, settings)
    except NotFoundError as exc:
        if not settings.stack or exc.fields.get("stack") != name:
            raise
        raise NotFoundError(
            f"MLZEN_STACK names stack '{name}', which is not registered. Unset MLZEN_STACK, "
            "or pick a stack from 'mlzen stack list'.",
            stack=name,
        ) from None


def load_stack(name: str, settings: Settings | None = None) -> Stack:
    """Build the registered stack ``name``: each component's config has its secret
    references resolved, is validated by its flavor, and becomes a component.

    Raises:
        NotFoundError: No such stack, or a flavor or secret it needs is missing.
        ConfigError: A config its flavor rejects (naming the component and the option).
    """
    settings = settings or load_settings()
    if name == LOCAL:
        return Stack(settings)
    from mlzen.artifacts.store import ArtifactStore
    from mlzen.flavors import (
        ExperimentTrackerComponent,
        MetadataStoreComponent,
        ModelDeployerComponent,
        OrchestratorComponent,
    )
    from mlzen.secrets import SecretResolver
    from mlzen.store import queries
    from mlzen.store.registry import component_not_found, stack_not_found

    registry = _registry(settings)
    row = queries.get_stack(registry, name)
    if row is None:
        raise stack_not_found(name)
    resolver = SecretResolver(settings)
    expected = {
        "orchestrator": OrchestratorComponent,
        "artifact_store": ArtifactStore,
        "metadata_store": MetadataStoreComponent,
        "model_deployer": ModelDeployerComponent,
        "experiment_tracker": ExperimentTrackerComponent,
    }
    built: dict[str, Any] = {}
    for kind, component_name in row["components"].items():
        component = queries.get_component(registry, kind, component_name)
        if component is None:
            raise component_not_found(kind, component_name)
        flavor_class = _flavor(kind, component["flavor"])
        where = f"{kind} '{component_name}'"
        config = flavor_class.validate_config(
            resolver.resolve(component["config"], f"Component {where} of stack '{name}'"),
            component=where,
            project_root=str(settings.project_root),
            fix=(
                "Fix the secret it references, or register the component again with "
                f"'mlzen component register {kind} {component_name} --replace ...'."
            ),
        )
        value = flavor_class().build(config)
        wanted = expected.get(kind)
        if wanted is not None and not isinstance(value, wanted):
            raise ConfigError(
                f"The {kind} flavor '{flavor_class.name}' built {type(value).__name__}, not "
                f"a {wanted.__name__}. Fix the flavor's build() in the package providing it.",
                kind=kind,
                flavor=flavor_class.name,
            )
        built[kind] = value
    store = built.get("metadata_store")
    return Stack(
        settings,
        name,
        orchestrator=built.get("orchestrator"),
        artifact_store=built.get("artifact_store"),
        store_url=store.url if store is not None else None,
        components=row["components"],
        model_deployer=built.get("model_deployer"),
        experiment_tracker=built.get("experiment_tracker"),
    )


def _flavor(kind: str, name: str) -> type[Flavor]:
    from mlzen import plugins

    return plugins.flavor(kind, name)
