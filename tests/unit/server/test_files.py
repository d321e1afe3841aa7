"""Artifact downloads never read outside the artifact store: ``..``, absolute paths,
symlinks, and recorded URIs that point elsewhere are all refused."""

from __future__ import annotations

import io
import os
import shutil
import zipfile
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from mlzen.artifacts.hashing import hash_folder
from mlzen.store import tables as t
from tests.unit.server.conftest import LiveServer
from tests.unit.server.pipelines_for_server import training

SECRET = "top secret outside the store"


@pytest.fixture
def raw(live: LiveServer, tmp_path: Path) -> dict[str, str]:
    """The ``raw`` artifact version of a real run, and a secret file outside the store."""
    training(rows=5)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text(SECRET)
    return live.get("/api/v1/artifact-versions", params={"name": "raw"}).json()["items"][0]


def _raw_get(live: LiveServer, path: str) -> httpx.Response:
    """GET ``path`` exactly as written (no client-side dot-segment normalisation)."""
    with live.client("viewer") as client:
        request = client.build_request("GET", live.url)
        request.url = request.url.copy_with(raw_path=path.encode())
        return client.send(request)


@pytest.mark.parametrize(
    "attack",
    [
        "../../../../../../etc/passwd",
        "..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
        "%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/etc/passwd",
        "%2fetc%2fpasswd",
        "data/../../../../../../etc/passwd",
        "%2e%2e",
        "%00",
    ],
)
def test_path_traversal_is_refused(live: LiveServer, raw: dict[str, str], attack: str) -> None:
    response = _raw_get(live, f"/api/v1/artifact-versions/{raw['id']}/files/{attack}")
    assert response.status_code in (404, 422), response.text
    assert "root:" not in response.text


def test_a_symlink_inside_the_folder_pointing_out_is_not_served(
    live: LiveServer, raw: dict[str, str], tmp_path: Path
) -> None:
    def record(folder: Path) -> Path:
        """Move ``folder`` to where its content hash puts it and record that hash, so
        that only the containment check stands in the way."""
        content_hash, _ = hash_folder(folder)
        target = folder.parents[1] / content_hash[:2] / content_hash
        target.parent.mkdir(exist_ok=True)
        folder.rename(target)
        with live.app.state.store.write() as connection:
            connection.execute(
                update(t.artifact_versions)
                .where(t.artifact_versions.c.id == raw["id"])
                .values(content_hash=content_hash, uri=str(target))
            )
        return target

    folder = Path(raw["uri"])
    os.symlink(tmp_path / "outside" / "secret.txt", folder / "secret.txt")
    folder = record(folder)
    # A folder whose files are not all inside the store (links resolved) is refused.
    for suffix in ("files", "files/secret.txt", "download", "preview"):
        response = live.get(f"/api/v1/artifact-versions/{raw['id']}/{suffix}")
        assert response.status_code == 409, (suffix, response.text)
        assert SECRET not in response.text and str(tmp_path / "outside") not in response.text
    # Without the link, the folder is served again.
    (folder / "secret.txt").unlink()
    record(folder)
    archive = live.get(f"/api/v1/artifact-versions/{raw['id']}/download")
    with zipfile.ZipFile(io.BytesIO(archive.content)) as opened:
        assert opened.namelist() and "secret.txt" not in opened.namelist()


@pytest.mark.parametrize("how", ["copy", "symlink"])
@pytest.mark.parametrize("legacy", [False, True])
def test_a_recorded_uri_outside_the_store_is_never_opened(
    live: LiveServer, raw: dict[str, str], tmp_path: Path, how: str, legacy: bool
) -> None:
    # An attacker with database access points a version at a folder outside the store
    # (a copy with a matching hash, or a link placed inside the store root).
    outside = tmp_path / "outside" / "copy"
    shutil.copytree(raw["uri"], outside)
    (outside / "planted.txt").write_text(SECRET)
    uri = str(outside)
    if how == "symlink":
        link = Path(raw["uri"]).parent / "link"
        os.symlink(outside, link)
        uri = str(link)
    values: dict[str, object] = {"uri": uri}
    if legacy:  # as recorded before versions named their artifact store
        values["artifact_store_id"] = None
    with live.app.state.store.write() as connection:
        connection.execute(
            update(t.artifact_versions)
            .where(t.artifact_versions.c.id == raw["id"])
            .values(**values)
        )
    for suffix in ("files", "download", "preview"):
        response = live.get(f"/api/v1/artifact-versions/{raw['id']}/{suffix}")
        assert SECRET not in response.text
        if legacy:  # its uri is all that says where it is, and that is outside
            assert response.status_code == 409, response.text
            assert response.json()["error"] == "ForeignArtifactError"
            assert str(tmp_path) not in response.text
        else:  # the folder comes from the store and the hash; the uri is not opened
            assert response.status_code == 200, response.text
    if not legacy:
        files = live.get(f"/api/v1/artifact-versions/{raw['id']}/files").json()
        assert "planted.txt" not in [f["path"] for f in files]


def test_an_unknown_version_is_not_found(live: LiveServer) -> None:
    response = live.get("/api/v1/artifact-versions/nope/files/x")
    assert response.status_code == 404
    assert response.json()["error"] == "NotFoundError"


@pytest.mark.parametrize(
    "relative", ["..", ".", "", "a/../b", "../x", "/etc/passwd", "a\\..\\b", "a\x00"]
)
def test_contained_file_refuses_unsafe_relative_paths(tmp_path: Path, relative: str) -> None:
    from mlzen.errors import NotFoundError
    from mlzen.server.files import contained_file

    folder = tmp_path / "folder"
    (folder / "a").mkdir(parents=True)
    (folder / "b").write_text("b")
    (folder / "a" / "b").write_text("ab")
    with pytest.raises(NotFoundError):
        contained_file(folder.resolve(), relative, uri=str(folder))
    assert contained_file(folder.resolve(), "a/b", uri=str(folder)).read_text() == "ab"
