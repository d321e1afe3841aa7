"""A cache hit needs outputs in an artifact store this stack can read (issue 10, G).

Two projects on one machine, each with its own artifact folder, log in to one team
server (a server process of its own on 127.0.0.1) and run the same pipeline. The second
must run its steps rather than take the first's outputs, which live in the first
project's folder; each project still takes its own hits. Versions recorded before
artifact stores had ids count as stored where their URI lies.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update

from mlzen import Client
from mlzen.config import load_settings
from mlzen.errors import ArtifactError
from mlzen.store import tables as t
from mlzen.store.remote import close_connections
from tests.integration import pipelines_for_remote as pipelines

# ForeignArtifactError's message: the files are recorded elsewhere than this store.
FOREIGN = "so it is not read from this stack's artifact store"

pytest.importorskip("fastapi", reason='the server needs: pip install "mlzen[server]"')

from tests.integration.test_remote import TeamServer, _make_server, login  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TeamServer]:
    team = _make_server(tmp_path_factory.mktemp("cache") / "server", "sqlite")
    team.start()
    try:
        yield team
    finally:
        team.stop()
        close_connections()


@pytest.fixture(autouse=True)
def quiet(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("MLZEN_PROGRESS", "0")
    yield
    close_connections()


def switch_to(root: Path, server: TeamServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Work in the project at ``root`` from now on, logged in to ``server``."""
    (root / ".mlzen").mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("MLZEN_PROJECT_ROOT", str(root))
    login(server, "editor")


def statuses(run: object) -> set[str]:
    return {step.status for step in run.steps.values()}  # type: ignore[attr-defined]


@pytest.mark.parametrize("executor", ["threads", "processes"])
def test_a_project_takes_no_cache_hits_from_another_projects_artifact_folder(
    server: TeamServer,
    project: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    executor: str,
) -> None:
    monkeypatch.setenv("MLZEN_EXECUTOR", executor)
    tag = uuid.uuid4().hex
    switch_to(project, server, monkeypatch)
    first = pipelines.numbers(count=4, tag=tag)
    assert statuses(first) == {"completed"}
    assert statuses(pipelines.numbers(count=4, tag=tag)) == {"cached"}  # its own hits
    first_total = first.steps["summarize"].outputs["total"]

    switch_to(tmp_path / "second", server, monkeypatch)
    second = pipelines.numbers(count=4, tag=tag)
    assert statuses(second) == {"completed"}, "took hits from the other project's folder"
    total = second.steps["summarize"].outputs["total"]
    assert total.load() == 6
    assert total.artifact_store_id != first_total.artifact_store_id
    assert Path(total.local_path()).is_relative_to(load_settings().artifact_root)
    with pytest.raises(ArtifactError, match=FOREIGN):
        Client().get_artifact_version(first_total.id).load()
    assert statuses(pipelines.numbers(count=4, tag=tag)) == {"cached"}  # now its own


def test_versions_from_before_store_ids_are_hits_only_where_their_files_are(
    server: TeamServer, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tag = uuid.uuid4().hex
    switch_to(project, server, monkeypatch)
    first = pipelines.numbers(count=3, tag=tag)
    # As if recorded before artifact versions had a store id.
    with server.store().write() as connection:
        connection.execute(update(t.artifact_versions).values(artifact_store_id=None))
    assert statuses(pipelines.numbers(count=3, tag=tag)) == {"cached"}

    switch_to(tmp_path / "second", server, monkeypatch)
    second = pipelines.numbers(count=3, tag=tag)
    assert statuses(second) == {"completed"}
    assert second.steps["summarize"].outputs["total"].load() == 3
    legacy = Client().get_artifact_version(first.steps["summarize"].outputs["total"].id)
    assert legacy.artifact_store_id is None
    with pytest.raises(ArtifactError, match=FOREIGN):
        legacy.load()
