"""Stacks: the registry, the active stack, loading from flavors, validation before a run."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from pydantic import BaseModel

from mlzen import Client, pipeline, plugins, step
from mlzen.artifacts.fsspec import FsspecArtifactStore
from mlzen.artifacts.local import LocalArtifactStore
from mlzen.config import load_settings
from mlzen.errors import ArtifactError, ConfigError, NotFoundError
from mlzen.flavors import Flavor, MetadataStoreComponent, OrchestratorComponent
from mlzen.orchestrators.local import LocalExecutor, LocalOrchestrator
from mlzen.secrets import set_secret
from mlzen.stack import Stack, active_stack, active_stack_name, load_stack
from mlzen.stack_registry import (
    delete_component,
    delete_stack,
    describe_component,
    describe_stack,
    list_components,
    list_stacks,
    redacted,
    register_component,
    register_stack,
    set_active_stack,
)
from tests.test_imports import loaded_after

# -- flavors only these tests know, registered through the entry-point list ----------------


class Empty(BaseModel):
    pass


class RootConfig(BaseModel):
    root: str = "shared"
    fail: str = ""


class RemoteOrchestrator(OrchestratorComponent):
    @property
    def is_remote(self) -> bool:
        return True

    def executor(self, store, artifacts):
        return LocalExecutor(store, artifacts)


class RemoteOrchestratorFlavor(Flavor):
    kind = "orchestrator"
    name = "remote"
    config_class = Empty

    def build(self, config):
        return RemoteOrchestrator()


class CheckedStore(FsspecArtifactStore):
    reachable_from_other_machines = True  # pretend: memory:// stands in for a bucket

    def __init__(self, url: str, fail: str) -> None:
        super().__init__(url)
        self.fail = fail

    def check(self) -> None:
        if self.fail == "mlzen":
            raise ArtifactError(f"The artifact store {self.root} has no bucket.")
        if self.fail == "foreign":
            raise RuntimeError("connection refused")


class SharedArtifactStoreFlavor(Flavor):
    kind = "artifact_store"
    name = "shared"
    config_class = RootConfig

    def build(self, config):
        return CheckedStore(f"memory://{config.root}", config.fail)


class SharedMetadataStoreFlavor(Flavor):
    kind = "metadata_store"
    name = "shared"
    config_class = Empty

    def build(self, config):
        return MetadataStoreComponent("postgresql+psycopg://nobody@127.0.0.1:9/none")


class WrongKindFlavor(Flavor):
    kind = "orchestrator"
    name = "wrong"
    config_class = Empty

    def build(self, config):
        return "not an orchestrator"


TEST_FLAVORS = {
    "orchestrator.remote": "RemoteOrchestratorFlavor",
    "orchestrator.wrong": "WrongKindFlavor",
    "artifact_store.shared": "SharedArtifactStoreFlavor",
    "metadata_store.shared": "SharedMetadataStoreFlavor",
}


@pytest.fixture
def test_flavors(monkeypatch: pytest.MonkeyPatch):
    group = plugins.ENTRY_POINT_GROUPS["flavors"]
    real = plugins.entry_points
    extra = [
        EntryPoint(name=name, value=f"{__name__}:{cls}", group=group)
        for name, cls in TEST_FLAVORS.items()
    ]

    def listing(*, group: str):
        found = list(real(group=group))
        return found + extra if group == plugins.ENTRY_POINT_GROUPS["flavors"] else found

    monkeypatch.setattr(plugins, "entry_points", listing)
    plugins.clear_cache()
    yield
    plugins.clear_cache()


@step
def make(n: int = 3) -> list[int]:
    return list(range(n))


@step
def total(values: list[int]) -> int:
    return sum(values)


@pipeline
def summing(n: int = 3) -> None:
    total(make(n=n))


def register_other_stack(project: Path, name: str = "other") -> None:
    register_component("artifact_store", "elsewhere", "local", {"path": "other/artifacts"})
    register_component("metadata_store", "otherdb", "sql", {"url": "sqlite:///other/runs.db"})
    register_stack(
        name, {"orchestrator": "local", "artifact_store": "elsewhere", "metadata_store": "otherdb"}
    )


# -- the active stack ---------------------------------------------------------------------


def test_local_is_the_default_and_needs_nothing(project: Path) -> None:
    stack = active_stack()
    assert stack.name == "local" and stack.orchestrator is None
    assert stack.components == {k: "local" for k in stack.components}
    assert stack.store_url == load_settings().store_url
    stack.validate()
    assert [s["name"] for s in list_stacks()] == ["local"]


def test_local_stack_path_imports_no_flavors_or_pydantic(project: Path) -> None:
    modules = loaded_after("from mlzen.stack import active_stack; active_stack().metadata_store")
    assert not {"pydantic", "mlzen.plugins", "mlzen.secrets", "cryptography"} & modules


def test_a_stack_with_another_folder_and_store_is_used_by_runs(project: Path) -> None:
    register_other_stack(project)
    set_active_stack("other")

    run = summing(n=4)

    assert run.stack == "other"
    assert run.steps["total"].outputs["output"].load() == 6
    uri = Path(run.steps["total"].outputs["output"].uri)
    assert uri.is_relative_to(project / "other" / "artifacts")
    assert (project / "other" / "runs.db").is_file()
    assert [r.id for r in Client().list_pipeline_runs()] == [run.id]
    local = Client(Stack(load_settings()))
    assert local.list_pipeline_runs() == []
    assert not (project / ".mlzen" / "artifacts").exists() or not any(
        (project / ".mlzen" / "artifacts").glob("??/*")
    )
    # The registry stays in the project's own store.
    assert active_stack_name() == "other"
    assert [s["name"] for s in list_stacks()] == ["local", "other"]


def test_mlzen_stack_overrides_the_stored_active_stack(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_other_stack(project)
    monkeypatch.setenv("MLZEN_STACK", "other")
    run = summing(n=2)
    assert run.stack == "other"
    assert Client(Stack(load_settings())).list_pipeline_runs() == []

    set_active_stack("other")
    monkeypatch.setenv("MLZEN_STACK", "local")
    assert active_stack().name == "local"
    assert summing(n=2).stack == "local"
    assert [s["name"] for s in list_stacks() if s["active"]] == ["local"]


def test_mlzen_stack_naming_an_unknown_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLZEN_STACK", "nope")
    with pytest.raises(NotFoundError, match="MLZEN_STACK names stack 'nope'"):
        Client()
    with pytest.raises(NotFoundError, match="No stack named 'ghost'"):
        load_stack("ghost")


def test_loaded_components_follow_their_configs(project: Path) -> None:
    register_component(
        "orchestrator", "procs", "local", {"executor": "processes", "max_workers": 2}
    )
    register_other_stack(project, "x")
    register_stack("y", {"orchestrator": "procs", "artifact_store": "local"})
    stack = load_stack("y")
    assert isinstance(stack.orchestrator, LocalOrchestrator)
    assert (stack.orchestrator.default_executor, stack.orchestrator.max_workers) == (
        "processes",
        2,
    )
    assert stack.artifact_store.root == load_settings().artifact_root
    assert stack.store_url == load_settings().store_url
    assert stack.components == {
        "orchestrator": "procs",
        "artifact_store": "local",
        "metadata_store": "local",
        "model_deployer": "local",
    }
    x = load_stack("x")
    assert isinstance(x.artifact_store, LocalArtifactStore)
    assert x.artifact_store.root == str(project / "other" / "artifacts")
    assert x.store_url == f"sqlite:///{project}/other/runs.db"


def test_secret_references_are_resolved_into_component_configs(project: Path) -> None:
    set_secret("paths", {"dir": str(project / "secret-place"), "db": "hidden.db"})
    register_component("artifact_store", "arts", "local", {"path": "{{ secrets.paths.dir }}/a"})
    register_component("metadata_store", "db", "sql", {"url": "sqlite:///{{secrets.paths.db}}"})
    register_stack("s", {"orchestrator": "local", "artifact_store": "arts", "metadata_store": "db"})
    stack = load_stack("s")
    assert stack.artifact_store.root == str(project / "secret-place" / "a")
    assert stack.store_url == f"sqlite:///{project}/hidden.db"
    # Stored (and shown) as written: the reference, not the value.
    assert describe_component("artifact_store", "arts")["config"] == {
        "path": "{{ secrets.paths.dir }}/a"
    }


def test_a_missing_secret_is_named_when_the_stack_loads(project: Path) -> None:
    register_component("artifact_store", "arts", "local", {"path": "{{ secrets.gone.dir }}"})
    register_stack("s", {"orchestrator": "local", "artifact_store": "arts"})
    with pytest.raises(NotFoundError, match="secret 'gone'") as caught:
        load_stack("s")
    assert "artifact_store 'arts' of stack 's'" in caught.value.message


def test_a_config_that_fails_after_resolution_names_component_and_option(project: Path) -> None:
    set_secret("paths", {"dir": "s3://bucket"})
    register_component("artifact_store", "arts", "local", {"path": "{{ secrets.paths.dir }}"})
    register_stack("s", {"orchestrator": "local", "artifact_store": "arts"})
    with pytest.raises(ConfigError, match="option 'path' for artifact_store 'arts'") as caught:
        load_stack("s")
    assert "s3://bucket" not in caught.value.message


def test_a_flavor_building_the_wrong_thing_is_named(test_flavors) -> None:
    register_component("orchestrator", "w", "wrong", {})
    register_stack("s", {"orchestrator": "w", "artifact_store": "local"})
    with pytest.raises(ConfigError, match="flavor 'wrong' built str"):
        load_stack("s")


# -- validation before a run -----------------------------------------------------------------


def test_remote_orchestrator_with_a_local_folder_fails_before_the_run(test_flavors) -> None:
    register_component("orchestrator", "cluster", "remote", {})
    register_stack("far", {"orchestrator": "cluster", "artifact_store": "local"})
    set_active_stack("far")
    with pytest.raises(ConfigError) as caught:
        summing()
    message = caught.value.message
    assert "Stack 'far'" in message and "'cluster'" in message
    assert "artifact store 'local' keeps artifacts in" in message
    assert "mlzen stack register far --replace" in message
    assert caught.value.component == "local" and caught.value.kind == "artifact_store"
    assert Client(Stack(load_settings())).list_pipeline_runs() == []  # nothing started


def test_remote_orchestrator_with_sqlite_fails_before_the_run(test_flavors) -> None:
    register_component("orchestrator", "cluster", "remote", {})
    register_component("artifact_store", "bucket", "shared", {})
    register_stack("far", {"orchestrator": "cluster", "artifact_store": "bucket"})
    with pytest.raises(ConfigError, match="metadata store 'local' is an SQLite file") as caught:
        load_stack("far").validate()
    assert "-m pg" in caught.value.message

    register_component("metadata_store", "pg", "shared", {})
    register_stack(
        "far",
        {"orchestrator": "cluster", "artifact_store": "bucket", "metadata_store": "pg"},
        replace=True,
    )
    load_stack("far").validate()  # shared stores: nothing to object to


def test_which_artifact_stores_other_machines_reach(tmp_path: Path) -> None:
    from mlzen.stack import _reachable_from_other_machines as reachable

    assert not reachable(LocalArtifactStore(tmp_path))
    assert not reachable(FsspecArtifactStore("memory://x"))
    assert not reachable(FsspecArtifactStore(f"file://{tmp_path}"))
    assert reachable(FsspecArtifactStore("s3://bucket/artifacts"))
    assert reachable(CheckedStore("memory://x", ""))  # it says so


def test_a_stack_whose_store_is_unreachable_fails_with_a_store_error(test_flavors) -> None:
    from mlzen.errors import StoreError

    register_component("metadata_store", "down", "shared", {})
    register_stack(
        "s", {"orchestrator": "local", "artifact_store": "local", "metadata_store": "down"}
    )
    set_active_stack("s")
    with pytest.raises(StoreError, match="nobody@127.0.0.1:9"):
        summing()


@pytest.mark.parametrize(
    ("fail", "error", "match"),
    [
        ("mlzen", ArtifactError, "has no bucket"),
        ("foreign", ConfigError, "Stack 's'.*'checked' failed its check: RuntimeError"),
    ],
)
def test_the_artifact_store_check_runs_before_the_run(test_flavors, fail, error, match) -> None:
    register_component("artifact_store", "checked", "shared", {"root": "c", "fail": fail})
    register_stack("s", {"orchestrator": "local", "artifact_store": "checked"})
    set_active_stack("s")
    with pytest.raises(error, match=match):
        summing()
    assert Client(Stack(load_settings())).list_pipeline_runs() == []


# -- the registry ---------------------------------------------------------------------------


def test_registration_validates_the_config_and_names_the_option() -> None:
    with pytest.raises(ConfigError, match="'max_workers'.*greater than or equal to 0"):
        register_component("orchestrator", "o", "local", {"max_workers": -2})
    with pytest.raises(ConfigError, match="has no option 'colour'"):
        register_component("orchestrator", "o", "local", {"colour": "red"})
    with pytest.raises(NotFoundError, match="No artifact_store flavor named 'gcs'"):
        register_component("artifact_store", "a", "gcs", {})
    with pytest.raises(ConfigError, match="Unknown component kind 'tracker'"):
        register_component("tracker", "t", "local", {})
    with pytest.raises(ConfigError, match="'local' is the built-in orchestrator"):
        register_component("orchestrator", "local", "local", {})
    with pytest.raises(ConfigError, match="name 'a b' is not allowed"):
        register_component("orchestrator", "a b", "local", {})
    with pytest.raises(ConfigError, match="malformed secret reference"):
        register_component("artifact_store", "a", "local", {"path": "{{ secrets.x }}"})
    assert [c["name"] for c in list_components()] == ["local", "local", "local", "local"]


def test_registering_twice_needs_replace() -> None:
    register_component("orchestrator", "o", "local", {})
    # From Python, the fix is named in Python terms (the CLI names its flag: test_stack_cli).
    with pytest.raises(ConfigError, match="'o' is already registered.*pass replace=True") as c:
        register_component("orchestrator", "o", "local", {"max_workers": 1})
    assert "--replace" not in c.value.message
    register_component("orchestrator", "o", "local", {"max_workers": 1}, replace=True)
    assert describe_component("orchestrator", "o")["config"] == {"max_workers": 1}
    register_stack("s", {"orchestrator": "o", "artifact_store": "local"})
    with pytest.raises(ConfigError, match="stack named 's' is already registered") as c:
        register_stack("s", {"orchestrator": "o", "artifact_store": "local"})
    assert "pass replace=True" in c.value.message and "--replace" not in c.value.message
    register_stack("s", {"orchestrator": "local", "artifact_store": "local"}, replace=True)


def test_a_stack_needs_registered_components() -> None:
    with pytest.raises(NotFoundError, match="No orchestrator component named 'ray'"):
        register_stack("s", {"orchestrator": "ray", "artifact_store": "local"})
    with pytest.raises(ConfigError, match="'local' is the built-in stack"):
        register_stack("local", {"orchestrator": "local", "artifact_store": "local"})
    assert [s["name"] for s in list_stacks()] == ["local"]


def test_a_component_in_use_cannot_be_deleted() -> None:
    register_component("orchestrator", "o", "local", {})
    register_stack("a", {"orchestrator": "o", "artifact_store": "local"})
    register_stack("b", {"orchestrator": "o", "artifact_store": "local"})
    with pytest.raises(ConfigError, match="used by stack 'a' \\(and 'b'\\)") as caught:
        delete_component("orchestrator", "o")
    assert caught.value.stack == "a"
    assert describe_component("orchestrator", "o")["stacks"] == ["a", "b"]
    delete_stack("a")
    delete_stack("b")
    delete_component("orchestrator", "o")
    with pytest.raises(NotFoundError, match="No orchestrator component named 'o'"):
        delete_component("orchestrator", "o")
    with pytest.raises(ConfigError, match="cannot be deleted"):
        delete_component("orchestrator", "local")


def test_deleting_stacks() -> None:
    register_stack("s", {"orchestrator": "local", "artifact_store": "local"})
    set_active_stack("s")
    with pytest.raises(ConfigError, match="'s' is the active stack.*--force"):
        delete_stack("s")
    with pytest.raises(ConfigError, match="'local' is the built-in stack"):
        delete_stack("local")
    with pytest.raises(NotFoundError, match="No stack named 'nope'"):
        delete_stack("nope")
    assert delete_stack("s", force=True) is True
    assert active_stack_name() == "local"
    with pytest.raises(NotFoundError, match="No stack named 's'"):
        set_active_stack("s")


def test_describing_hides_passwords_but_not_references(project: Path) -> None:
    register_component(
        "metadata_store", "pg", "sql", {"url": "postgresql+psycopg://me:hunter2@db/x"}
    )
    register_component(
        "metadata_store", "pg2", "sql", {"url": "postgresql://me:{{ secrets.pg.pw }}@db/x"}
    )
    register_stack(
        "s", {"orchestrator": "local", "artifact_store": "local", "metadata_store": "pg"}
    )
    described = describe_stack("s")
    assert described["components"]["metadata_store"] == {
        "name": "pg",
        "flavor": "sql",
        "config": {"url": "postgresql+psycopg://me:***@db/x"},
    }
    assert "hunter2" not in repr(list_components())
    assert describe_component("metadata_store", "pg2")["config"]["url"] == (
        "postgresql://me:{{ secrets.pg.pw }}@db/x"
    )
    assert redacted({"secret_key": "abc", "token": "{{ secrets.t.v }}", "region": "eu"}) == {
        "secret_key": "********",
        "token": "{{ secrets.t.v }}",
        "region": "eu",
    }
    local = describe_stack()
    assert local["name"] == "local" and local["active"]
    assert local["components"]["artifact_store"]["config"] == {
        "path": str(project / ".mlzen" / "artifacts")
    }
    with pytest.raises(NotFoundError, match="No metadata_store component named 'x'"):
        describe_component("metadata_store", "x")


def test_the_registry_and_secrets_on_postgres(postgres_url: str, project: Path) -> None:
    from mlzen.secrets import get_secret, list_secrets

    set_secret("pg", {"password": "pw"})
    set_secret("pg", {"password": "pw2"})
    assert get_secret("pg") == {"password": "pw2"}
    register_component("artifact_store", "arts", "local", {"path": "{{ secrets.pg.password }}"})
    register_stack("s", {"orchestrator": "local", "artifact_store": "arts"})
    set_active_stack("s")
    set_active_stack("s")
    assert active_stack().artifact_store.root == str(project / "pw2")
    with pytest.raises(ConfigError, match="used by stack 's'"):
        delete_component("artifact_store", "arts")
    assert delete_stack("s", force=True) is True
    delete_component("artifact_store", "arts")
    assert [s["name"] for s in list_secrets()] == ["pg"]


def test_a_store_made_before_the_registry_is_migrated_on_first_use(project: Path) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine, inspect

    from mlzen.store import tables
    from mlzen.store.metadata import HEAD_REVISION, dispose_engines

    url = load_settings().store_url
    config = Config()
    config.set_main_option("script_location", str(Path(tables.__file__).parent / "migrations"))
    engine = create_engine(url)
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        connection.commit()
        assert "stacks" not in inspect(connection).get_table_names()
    engine.dispose()
    dispose_engines()

    register_component("orchestrator", "o", "local", {})
    assert describe_component("orchestrator", "o")["flavor"] == "local"
    engine = create_engine(url)
    with engine.connect() as connection:
        version = connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    engine.dispose()
    assert version == HEAD_REVISION == "0004"


# -- the artifact store's identity, paired with the metadata store --------------------------


@step
def pair_numbers(count: int = 2) -> list:
    return list(range(count))


@pipeline
def pairing(count: int = 2) -> None:
    pair_numbers(count=count)


def test_a_run_claims_the_artifact_store_for_its_metadata_store(project: Path) -> None:
    from mlzen.artifacts.identity import store_identity, store_users
    from mlzen.store import identity

    run = pairing()
    stack = active_stack()
    claimed = store_identity(stack.artifact_store)
    assert claimed is not None
    assert claimed.owner == identity.metadata_store_id(stack.metadata_store)
    assert identity.artifact_stores(stack.metadata_store) == {claimed.id: stack.artifact_store.root}
    output = run.steps["pair_numbers"].outputs["output"]
    assert output.artifact_store_id == claimed.id
    assert store_users(stack.artifact_store) == {}


def test_versions_from_before_store_ids_are_adopted_by_the_store_holding_them(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import update

    from mlzen.store import tables as t

    kept = pairing(count=3).steps["pair_numbers"].outputs["output"]
    monkeypatch.setenv("MLZEN_ARTIFACT_ROOT", str(tmp_path / "other-artifacts"))
    elsewhere = pairing(count=4).steps["pair_numbers"].outputs["output"]
    monkeypatch.delenv("MLZEN_ARTIFACT_ROOT")
    store = active_stack().metadata_store
    with store.write() as connection:  # as if recorded before stores had ids
        connection.execute(update(t.artifact_versions).values(artifact_store_id=None))
    (project / ".mlzen" / "artifacts" / ".mlzen-store.json").unlink()
    import mlzen.stack

    monkeypatch.setattr(mlzen.stack, "_paired", set())

    identity = active_stack().claim_artifact_store()
    assert identity is not None
    client = Client()
    assert client.get_artifact_version(kept.id).artifact_store_id == identity.id
    assert client.get_artifact_version(elsewhere.id).artifact_store_id is None
    assert client.get_artifact_version(kept.id).load() == [0, 1, 2]


def test_another_metadata_store_writing_to_the_store_leaves_word(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlzen.artifacts.identity import store_users

    pairing()
    monkeypatch.setenv("MLZEN_STORE_URL", f"sqlite:///{tmp_path / 'guest.db'}")
    pairing(count=5)
    users = store_users(active_stack().artifact_store)
    assert list(users.values()) == [f"sqlite:///{tmp_path / 'guest.db'}"]
