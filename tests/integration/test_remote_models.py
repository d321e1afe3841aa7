"""Models for a project logged in to a team server: versions are made, linked and
promoted on the server, over real HTTP (the server fixtures of ``test_remote.py``)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated

import pytest

from mlzen import Client, Model, log_metadata, pipeline, step
from mlzen.errors import StageConflictError, StoreError
from mlzen.store import models
from tests.integration.test_remote import TeamServer, login, quiet, team_server

__all__ = ["quiet", "team_server"]  # fixtures, used by name


@step
def numbers(count: int = 3) -> Annotated[list, "numbers"]:
    return list(range(count))


@step
def fit(numbers: list) -> Annotated[dict, "model"]:
    log_metadata({"total": sum(numbers)}, model=True)
    return {"total": sum(numbers)}


def _training(name: str):
    @pipeline(name=f"remote_training_{name}", model=Model(name))
    def training(count: int = 3):
        fit(numbers(count))

    return training


def test_versions_are_made_linked_and_promoted_on_the_server(
    team_server: TeamServer, project: Path
) -> None:
    login(team_server)
    name = f"churn-{uuid.uuid4().hex[:8]}"  # a model of its own on the shared server
    training = _training(name)
    first, second = training(count=3), training(count=4)

    server = team_server.store()
    on_server = models.list_versions(server, name)
    assert [(v["version"], v["run_id"]) for v in on_server] == [(2, second.id), (1, first.id)]
    links = {link["name"] for link in models.artifact_links(server, on_server[0]["id"])}
    assert links == {"numbers", "model"}

    client = Client()
    version = client.get_model_version(name, "latest")
    assert version.number == 2 and version.metadata == {"total": 6}
    assert version.get_artifact("model").load() == {"total": 6}
    version.promote("production")
    with pytest.raises(StageConflictError, match="force=True"):
        client.get_model_version(name, 1).promote("production")
    client.get_model_version(name, 1).promote("production", force=True)
    stages = {v["version"]: v["stage"] for v in models.list_versions(server, name)}
    assert stages == {1: "production", 2: "archived"}
    assert name in {m.name for m in client.list_models()}


def test_a_viewer_reads_models_but_cannot_promote(team_server: TeamServer, project: Path) -> None:
    login(team_server)
    name = f"fraud-{uuid.uuid4().hex[:8]}"
    _training(name)()
    login(team_server, "viewer")
    client = Client()
    version = client.get_model_version(name, 1)
    assert set(version.artifacts) == {"numbers", "model"}
    with pytest.raises(StoreError, match="refused 'models.promote': This needs the 'editor'"):
        version.promote("staging")
    assert client.get_model_version(name, 1).stage == "none"
