"""Artifact locations are never taken from a record (issue 10, A).

An attacker holding an editor key records artifact versions straight through a real
team server's store API (a server process of its own on 127.0.0.1), with any location,
hash, materializer and name. Nothing outside the reader's artifact store is read: not
by the server's preview, files, download or comparison routes, not by a teammate's
client that holds only a viewer key (loading, comparing, exporting, deploying), and the
errors say nothing about the server's files. A pickle the editor recorded never runs.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from mlzen import Client
from mlzen.errors import ArtifactError
from mlzen.store import tables as t
from mlzen.store.metadata import new_id, utcnow
from mlzen.store.remote import close_connections
from tests.cli import run_main
from tests.faults.forgery import content_folder, forge_version, pickled_payload, store_call

# ForeignArtifactError's message: the files are recorded elsewhere than this store.
FOREIGN = "so it is not read from this stack's artifact store"

pytest.importorskip("fastapi", reason='the server needs: pip install "mlzen[server]"')

from tests.integration.test_remote import TeamServer, _make_server, login  # noqa: E402

SECRET = "the server's private key, which no viewer may read"
PICKLE = "mlzen.artifacts.builtin:PickleMaterializer"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TeamServer]:
    team = _make_server(tmp_path_factory.mktemp("locations") / "server", "sqlite")
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


def forge(server: TeamServer, **fields: Any) -> dict[str, Any]:
    return forge_version(server.url, server.keys["editor"], **fields)


def viewer_get(server: TeamServer, path: str) -> Any:
    import httpx

    return httpx.get(
        f"{server.url}{path}",
        headers={"Authorization": f"Bearer {server.keys['viewer']}"},
        timeout=30,
    )


def secret_folder(server: TeamServer) -> tuple[Path, str]:
    """A folder on the server, outside its artifact store, shaped like an artifact."""
    payload = json.dumps({"secret": SECRET}).encode()
    return content_folder(server.root / "private" / uuid.uuid4().hex, {"data.json": payload})


# -- the server ---------------------------------------------------------------------------


def test_an_editor_cannot_make_the_server_serve_a_file_outside_its_artifact_store(
    server: TeamServer,
) -> None:
    folder, content_hash = secret_folder(server)
    forged = forge(server, name=f"leak-{uuid.uuid4().hex[:8]}", uri=str(folder),
                   content_hash=content_hash)  # fmt: skip
    version = forged["version"]
    for route in ("preview", "files", "files/data.json", "download"):
        response = viewer_get(server, f"/api/v1/artifact-versions/{version}/{route}")
        assert response.status_code == 409, (route, response.text)
        assert response.json()["error"] == "ForeignArtifactError"
        assert SECRET not in response.text
        assert str(server.root) not in response.text and content_hash not in response.text
    run = forged["run"]
    diff = viewer_get(server, f"/api/v1/compare?old={run}&new={run}")
    assert diff.status_code == 200, diff.text
    assert SECRET not in diff.text


def test_refusals_say_nothing_about_the_servers_files(server: TeamServer) -> None:
    """Whether a forged location exists, or what its files hash to, is not for a client
    to learn: three forgeries, one answer."""
    folder, content_hash = secret_folder(server)
    other_folder, other_hash = secret_folder(server)
    (other_folder / "data.json").write_text('{"changed": true}')  # now it hashes otherwise
    from mlzen.artifacts.hashing import hash_folder

    actual_other, _ = hash_folder(other_folder)
    missing = server.root / "private" / "nothing" / content_hash[:2] / content_hash
    answers = {}
    for label, uri, digest in (
        ("exists", str(folder), content_hash),
        ("absent", str(missing), content_hash),
        ("tampered", str(other_folder), other_hash),
    ):
        name = f"probe-{label}-{uuid.uuid4().hex[:6]}"
        version = forge(server, name=name, uri=uri, content_hash=digest)["version"]
        for route in ("preview", "files", "download"):
            response = viewer_get(server, f"/api/v1/artifact-versions/{version}/{route}")
            text = response.text.replace(name, "NAME")
            answers.setdefault(route, set()).add((response.status_code, text))
            assert str(server.root) not in text and actual_other not in text
    for route, seen in answers.items():
        assert len(seen) == 1, (route, seen)


def test_a_version_claiming_the_servers_own_store_reads_only_that_store(
    server: TeamServer,
) -> None:
    """An editor who learns the server's artifact store id still reaches only the folder
    its store keeps for the hash, and errors do not show where that store is."""
    from mlzen.artifacts.identity import claim_store
    from mlzen.artifacts.store import artifact_store_for

    artifacts = artifact_store_for(str(server.root / ".mlzen" / "artifacts"))
    identity, _ = claim_store(artifacts, owner="0" * 32, owner_url="test")
    folder, content_hash = secret_folder(server)
    version = forge(
        server,
        name=f"own-{uuid.uuid4().hex[:8]}",
        uri=str(folder),
        content_hash=content_hash,
        artifact_store_id=identity.id,
    )["version"]
    for route in ("preview", "files", "download"):
        response = viewer_get(server, f"/api/v1/artifact-versions/{version}/{route}")
        assert response.status_code == 404, response.text
        assert SECRET not in response.text and str(server.root) not in response.text


def test_the_server_checks_every_field_of_a_recorded_version(server: TeamServer) -> None:
    folder, content_hash = secret_folder(server)
    key = server.keys["editor"]
    good = {"name": "ok", "uri": str(folder), "content_hash": content_hash}
    bad: list[tuple[dict[str, Any], str]] = [
        ({"uri": "/etc"}, "uri"),
        ({"uri": f"/srv/../{content_hash[:2]}/{content_hash}"}, "uri"),
        ({"uri": f"/srv/\n/{content_hash[:2]}/{content_hash}"}, "uri"),
        ({"content_hash": "../../../../etc"}, "content_hash"),
        ({"size": -1}, "size"),
        ({"materializer": "not a materializer"}, "materializer"),
        ({"data_type": "builtins.object; rm -rf"}, "data_type"),
        ({"artifact_store_id": "../../elsewhere"}, "artifact_store_id"),
        ({"name": "../../etc/passwd"}, "../../etc/passwd"),
        ({"name": "a/b"}, "a/b"),
        ({"name": "line\nbreak"}, "InvalidNameError"),
    ]
    for change, named in bad:
        fields = {**good, **change}
        with pytest.raises(AssertionError) as refused:
            forge_version(server.url, key, **fields)
        assert named in str(refused.value), (change, str(refused.value))
    # Runs, steps, models and deployments with such names are refused too.
    base = {"spec": {}, "parameters": {}, "stack": "local", "code_version": {},
            "environment": {}, "lease_seconds": 60.0}  # fmt: skip
    for arguments in (
        {"pipeline_name": "p", "run_name": "../escape", **base},
        {"pipeline_name": "a/b", "run_name": f"r-{uuid.uuid4().hex}", **base},
    ):
        response = store_call(server.url, key, "metadata.create_run", **arguments)
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "InvalidNameError"
    response = store_call(
        server.url, key, "deployments.save_deployment", name="evil/../x",
        model_version_id=None, flavor="local", status="running", config={},
    )  # fmt: skip
    assert response.status_code == 400 and "evil/../x" in response.text


def test_a_deployment_record_cannot_point_its_log_outside_the_deployments_folder(
    server: TeamServer, project: Path
) -> None:
    key = server.keys["editor"]
    response = store_call(
        server.url, key, "deployments.save_deployment", name="evil-log",
        model_version_id=None, flavor="local", status="stopped", config={},
        log_path="/etc/passwd",
    )  # fmt: skip
    assert response.status_code == 400, response.text
    assert "log path" in response.json()["detail"]
    # A record written before the check (straight into the server's database) is not
    # followed either: a viewer asking for its log reads nothing outside the project.
    outside = project.parent / "outside.log"
    outside.write_text(SECRET)
    now = utcnow()
    with server.store().write() as connection:
        connection.execute(
            insert(t.deployments).values(
                id=new_id(),
                name="old-evil",
                flavor="local",
                status="stopped",
                config={},
                log_path=str(outside),
                created_at=now,
                updated_at=now,
            )  # fmt: skip
        )
    login(server, "viewer")
    code, out, err = run_main("deployments", "logs", "old-evil")
    assert code == 2, out + err
    assert SECRET not in out + err
    assert "not read" in err


# -- a teammate's client, logged in with a viewer key ------------------------------------


def forged_pickle(server: TeamServer, where: Path, marker: Path, **fields: Any) -> dict[str, Any]:
    folder, content_hash = content_folder(where, {"data.pkl": pickled_payload(marker)})
    return forge(
        server,
        uri=str(folder),
        content_hash=content_hash,
        materializer=PICKLE,
        data_type="builtins.object",
        **fields,
    )


def test_a_pickle_an_editor_recorded_never_runs_in_a_viewers_process(
    server: TeamServer, project: Path, tmp_path: Path
) -> None:
    marker, second = tmp_path / "pwned", tmp_path / "pwned-2"
    name, model = f"evil-{uuid.uuid4().hex[:8]}", f"evil-model-{uuid.uuid4().hex[:8]}"
    forged_pickle(server, tmp_path / "anywhere", marker, name=name, model=model)
    forged_pickle(server, tmp_path / "elsewhere", second, name=name)  # other content
    login(server, "viewer")

    client = Client()
    evil = client.get_artifact_version(name, 1)
    with pytest.raises(ArtifactError, match=FOREIGN) as refused:
        evil.load()
    assert str(tmp_path) not in refused.value.message
    with pytest.raises(ArtifactError, match=FOREIGN):
        evil.local_path()
    from mlzen import compare

    diff = compare(evil, client.get_artifact_version(name, 2))
    assert diff.kind == "opaque" and not diff.identical

    code, out, err = run_main("artifacts", "export", f"{name}:1", str(tmp_path / "out"))
    assert code == 2 and "ForeignArtifactError" not in out
    assert "outside this stack's artifact store" in err
    code, out, err = run_main("deploy", f"{model}:latest", "--artifact", name)
    assert code == 2, out + err
    assert "needs the 'editor' role" in err  # the role is checked before anything loads
    login(server, "editor")  # an editor's deploy reaches the artifact, and is refused too
    code, out, err = run_main("deploy", f"{model}:latest", "--artifact", name)
    assert code == 2, out + err
    assert "outside this stack's artifact store" in err
    assert not marker.exists(), "an unpickled record ran code in the viewer's process"
    assert not second.exists(), "an unpickled record ran code in the viewer's process"
    code, out, _ = run_main("deployments", "list")
    assert model not in out  # nothing was started
