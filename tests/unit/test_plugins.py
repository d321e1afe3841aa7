"""Flavors come from the entry-point group `mlzen.flavors`, built-ins included."""

from __future__ import annotations

import os
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from pydantic import BaseModel

from mlzen import plugins
from mlzen.artifacts.local import LocalArtifactStore, LocalArtifactStoreFlavor
from mlzen.errors import ConfigError, NotFoundError
from mlzen.flavors import Flavor, MetadataStoreComponent
from mlzen.orchestrators.local import LocalExecutor, LocalOrchestrator, LocalOrchestratorFlavor
from mlzen.store.flavor import SqlMetadataStoreFlavor
from tests.test_imports import loaded_after

GROUP = plugins.ENTRY_POINT_GROUPS["flavors"]


class EmptyConfig(BaseModel):
    pass


class GoodFlavor(Flavor):
    kind = "orchestrator"
    name = "good"
    config_class = EmptyConfig

    def build(self, config):
        return LocalOrchestrator()


class MislabelledFlavor(GoodFlavor):
    name = "other"


class NotAFlavor:
    pass


@pytest.fixture
def entry_points(monkeypatch: pytest.MonkeyPatch):
    """Replace what `importlib.metadata` lists for the flavors group; count the listings."""
    listed: list[str] = []
    extra: list[EntryPoint] = []
    real = plugins.entry_points

    def fake(*, group: str):
        listed.append(group)
        return [*real(group=group), *extra] if group == GROUP else real(group=group)

    monkeypatch.setattr(plugins, "entry_points", fake)
    plugins.clear_cache()

    def add(name: str, value: str) -> None:
        extra.append(EntryPoint(name=name, value=value, group=GROUP))
        plugins.clear_cache()
        listed.clear()

    add.listed = listed  # type: ignore[attr-defined]
    yield add
    plugins.clear_cache()


def test_builtins_are_registered_as_entry_points_like_any_package() -> None:
    found = plugins.flavors()
    assert {
        ("orchestrator", "local"),
        ("artifact_store", "local"),
        ("metadata_store", "sql"),
    } <= set(found)
    assert plugins.flavor("orchestrator", "local") is LocalOrchestratorFlavor
    assert plugins.flavor("artifact_store", "local") is LocalArtifactStoreFlavor
    assert plugins.flavor("metadata_store", "sql") is SqlMetadataStoreFlavor
    assert ("metadata_store", "sql") not in plugins.flavors("orchestrator")


def test_entry_points_are_listed_once_and_loaded_on_demand(entry_points) -> None:
    entry_points("orchestrator.good", f"{__name__}:GoodFlavor")
    assert plugins.flavor("orchestrator", "good") is GoodFlavor
    assert plugins.flavor("orchestrator", "good") is GoodFlavor
    assert plugins.flavor("orchestrator", "local") is LocalOrchestratorFlavor
    assert entry_points.listed == [GROUP]


def test_unknown_flavor_lists_the_available_ones() -> None:
    with pytest.raises(NotFoundError, match="No orchestrator flavor named 'kubeflow'") as caught:
        plugins.flavor("orchestrator", "kubeflow")
    assert "local" in caught.value.message
    assert caught.value.flavor == "kubeflow"


@pytest.mark.parametrize(
    ("name", "value", "culprit"),
    [
        ("orchestrator.broken", "no_such_module_here:Flavor", "No module named"),
        ("orchestrator.notaflavor", f"{__name__}:NotAFlavor", "not a subclass"),
        ("orchestrator.mislabelled", f"{__name__}:MislabelledFlavor", "declares kind"),
    ],
)
def test_bad_entry_points_are_named(entry_points, name, value, culprit) -> None:
    entry_points(name, value)
    kind, flavor = name.split(".")
    with pytest.raises(ConfigError, match=culprit) as caught:
        plugins.flavor(kind, flavor)
    assert name in caught.value.message and value in caught.value.message


def test_malformed_entry_point_names_are_ignored(entry_points) -> None:
    entry_points("nodot", f"{__name__}:GoodFlavor")
    assert all(kind != "nodot" for kind, _ in plugins.flavors())


def test_the_materializers_group_is_the_one_the_registry_reads() -> None:
    from mlzen.artifacts.materializer import ENTRY_POINT_GROUP

    assert plugins.ENTRY_POINT_GROUPS["materializers"] == ENTRY_POINT_GROUP


def test_builtin_flavor_modules_do_not_import_pydantic_until_asked() -> None:
    modules = loaded_after("import mlzen.orchestrators.local, mlzen.artifacts.local")
    assert "pydantic" not in modules
    modules = loaded_after(
        "from mlzen.artifacts.local import LocalArtifactStoreFlavor as F; F.config_class"
    )
    assert "pydantic" in modules


# -- the built-in flavors' configs ---------------------------------------------------------


def validate(flavor: type[Flavor], **values):
    return flavor.validate_config(values, component="x 'y'", project_root="/proj")


def test_local_orchestrator_config_and_component() -> None:
    config = validate(LocalOrchestratorFlavor, executor="processes", max_workers=3)
    orchestrator = LocalOrchestratorFlavor().build(config)
    assert not orchestrator.is_remote
    executor = orchestrator.executor(None, None)
    assert isinstance(executor, LocalExecutor)
    assert (executor._default, executor._max_workers) == ("processes", 3)
    defaults = validate(LocalOrchestratorFlavor)
    assert (defaults.executor, defaults.max_workers) == ("threads", 0)


@pytest.mark.parametrize(
    ("values", "option", "reason"),
    [
        ({"executor": "gpus"}, "executor", "'threads' or 'processes'"),
        ({"max_workers": -1}, "max_workers", "greater than or equal to 0"),
        ({"max_workers": True}, "max_workers", "valid integer"),
        ({"max_workers": "2"}, "max_workers", "valid integer"),
        ({"workers": 2}, "workers", "has no option"),
    ],
)
def test_local_orchestrator_config_errors_name_the_option(values, option, reason) -> None:
    with pytest.raises(ConfigError, match=reason) as caught:
        validate(LocalOrchestratorFlavor, **values)
    assert f"'{option}'" in caught.value.message
    assert caught.value.option == option


def test_local_artifact_store_paths(tmp_path: Path) -> None:
    relative = validate(LocalArtifactStoreFlavor, path="arts")
    assert relative.path == "/proj/arts"
    absolute = validate(LocalArtifactStoreFlavor, path=f"file://{tmp_path}/a")
    store = LocalArtifactStoreFlavor().build(absolute)
    assert isinstance(store, LocalArtifactStore) and store.root == f"{tmp_path}/a"
    home = validate(LocalArtifactStoreFlavor, path="~/arts")
    assert home.path == os.path.expanduser("~/arts")


@pytest.mark.parametrize(
    ("values", "reason"),
    [({}, "is required"), ({"path": "s3://bucket/x"}, "not a URL"), ({"path": " "}, "empty")],
)
def test_local_artifact_store_rejects(values, reason) -> None:
    with pytest.raises(ConfigError, match=reason):
        validate(LocalArtifactStoreFlavor, **values)


def test_sql_store_url_is_checked_and_its_password_never_shown() -> None:
    config = validate(SqlMetadataStoreFlavor, url="postgresql+psycopg://me:hunter2@db/mlzen")
    component = SqlMetadataStoreFlavor().build(config)
    assert component == MetadataStoreComponent("postgresql+psycopg://me:hunter2@db/mlzen")
    assert component.reachable_from_other_machines
    assert "hunter2" not in repr(config) and "hunter2" not in repr(component)
    for bad, reason in [
        ("postgress://me:hunter2@db/mlzen", "no database dialect 'postgress'"),
        ("not a url hunter2", "not an SQLAlchemy URL"),
    ]:
        with pytest.raises(ConfigError, match=reason) as caught:
            validate(SqlMetadataStoreFlavor, url=bad)
        assert "hunter2" not in str(caught.value)
        assert caught.value.option == "url"


def test_sql_store_relative_sqlite_path_is_relative_to_the_project() -> None:
    config = validate(SqlMetadataStoreFlavor, url="sqlite:///other/runs.db")
    assert config.url == "sqlite:////proj/other/runs.db"
    component = SqlMetadataStoreFlavor().build(config)
    assert not component.reachable_from_other_machines
    assert validate(SqlMetadataStoreFlavor, url="sqlite://").url == "sqlite://"


def test_sql_store_password_given_apart_may_hold_any_character() -> None:
    from sqlalchemy.engine import make_url

    config = validate(
        SqlMetadataStoreFlavor, url="postgresql+psycopg://me@db/x", password="p@ss/:w"
    )
    component = SqlMetadataStoreFlavor().build(config)
    assert make_url(component.url).password == "p@ss/:w"
    assert "p@ss" not in repr(config)
