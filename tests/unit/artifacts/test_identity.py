"""An artifact store's identity, and where a recorded version's files are in it."""

from __future__ import annotations

import json
import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest

from mlzen.artifacts.fsspec import FsspecArtifactStore
from mlzen.artifacts.identity import (
    IDENTITY_FILE,
    ForeignArtifactError,
    claim_store,
    record_user,
    store_identity,
    store_users,
    version_folder,
)
from mlzen.artifacts.local import LocalArtifactStore
from mlzen.artifacts.materializer import save_artifact
from mlzen.artifacts.store import ArtifactStore
from mlzen.errors import ArtifactError

OWNER, OTHER = "a" * 32, "b" * 32


@pytest.fixture
def memory(tmp_path: Path) -> Iterator[FsspecArtifactStore]:
    root = f"memory://mlzen-identity-{uuid.uuid4().hex}"
    yield FsspecArtifactStore(root, cache_dir=tmp_path / "cache")
    memory_fs = fsspec.filesystem("memory")
    if memory_fs.exists(root.removeprefix("memory://")):
        memory_fs.rm(root.removeprefix("memory://"), recursive=True)


@pytest.fixture(params=["local", "fsspec"])
def any_store(request: pytest.FixtureRequest, store: LocalArtifactStore) -> ArtifactStore:
    if request.param == "local":
        return store
    return request.getfixturevalue("memory")  # type: ignore[no-any-return]


def test_a_store_gets_one_identity_on_first_claim(any_store: ArtifactStore) -> None:
    assert store_identity(any_store) is None
    identity, made = claim_store(any_store, owner=OWNER, owner_url="sqlite:///a.db")
    assert made and identity.owner == OWNER and len(identity.id) == 32
    again, made_again = claim_store(any_store, owner=OTHER, owner_url="sqlite:///b.db")
    assert again == identity and not made_again
    # Another object over the same root reads the same identity from the file.
    fresh = type(any_store).__new__(type(any_store))
    fresh.__dict__.update({k: v for k, v in any_store.__dict__.items() if k != "_mlzen_identity"})
    assert store_identity(fresh) == identity
    assert IDENTITY_FILE in any_store.list_store_files()
    assert any_store.list_uris() == []  # the store files are not artifacts


def test_first_claims_racing_agree_on_one_identity(tmp_path: Path) -> None:
    root = tmp_path / "raced"
    results: list[str] = []
    start = threading.Barrier(8)

    def claim() -> None:
        start.wait()
        identity, _ = claim_store(LocalArtifactStore(root), owner=OWNER, owner_url="u")
        results.append(identity.id)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1
    assert sorted(os.listdir(root)) == [IDENTITY_FILE]  # no drafts left behind


def test_a_damaged_identity_file_is_an_error_not_a_new_identity(
    store: LocalArtifactStore,
) -> None:
    Path(store.root).mkdir(parents=True)
    (Path(store.root) / IDENTITY_FILE).write_text("{not json")
    with pytest.raises(ArtifactError, match="damaged"):
        claim_store(store, owner=OWNER, owner_url="u")
    assert (Path(store.root) / IDENTITY_FILE).read_text() == "{not json"


def test_other_metadata_stores_leave_word_beside_the_identity(any_store: ArtifactStore) -> None:
    claim_store(any_store, owner=OWNER, owner_url="sqlite:///a.db")
    assert store_users(any_store) == {}
    record_user(any_store, OTHER, "http://team:8237")
    record_user(any_store, OTHER, "http://team:8237")  # once is enough
    assert store_users(any_store) == {OTHER: "http://team:8237"}
    with pytest.raises(ArtifactError):
        record_user(any_store, "../../x", "u")
    with pytest.raises(ArtifactError):
        any_store.read_store_file("../../etc/passwd")


# -- version_folder: where a recorded version's files are ------------------------------


def test_a_version_is_read_from_its_own_store_whatever_its_uri_says(
    any_store: ArtifactStore,
) -> None:
    identity, _ = claim_store(any_store, owner=OWNER, owner_url="u")
    saved = save_artifact(any_store, [1, 2], name="x")
    found = version_folder(
        any_store,
        artifact_store_id=identity.id,
        uri="/somewhere/else/entirely",
        content_hash=saved.content_hash,
        name="x",
    )
    assert found == saved.uri == any_store.folder_uri(saved.content_hash)


def test_a_version_of_another_store_is_refused_without_a_path(any_store: ArtifactStore) -> None:
    claim_store(any_store, owner=OWNER, owner_url="u")
    saved = save_artifact(any_store, [1, 2], name="x")
    with pytest.raises(ForeignArtifactError) as refused:
        version_folder(
            any_store,
            artifact_store_id=OTHER,
            uri=saved.uri,
            content_hash=saved.content_hash,
            name="x",
            version=3,
        )
    assert "x:3" in refused.value.message and OTHER in refused.value.message
    assert saved.uri not in refused.value.message and any_store.root not in refused.value.message
    # A store without an identity holds no version that names one.
    unclaimed = LocalArtifactStore(Path(any_store.root.replace("memory://", "/tmp/")) / "none")
    with pytest.raises(ForeignArtifactError):
        version_folder(
            unclaimed, artifact_store_id=OTHER, uri=saved.uri,
            content_hash=saved.content_hash, name="x",
        )  # fmt: skip


def test_versions_without_a_store_id_are_read_only_where_their_uri_lies(
    store: LocalArtifactStore, tmp_path: Path
) -> None:
    saved = save_artifact(store, {"a": 1}, name="x")
    assert (
        version_folder(
            store, artifact_store_id=None, uri=saved.uri, content_hash=saved.content_hash, name="x"
        )
        == saved.uri
    )
    elsewhere = str(tmp_path / "copy" / saved.content_hash[:2] / saved.content_hash)
    beside = str(Path(store.root) / "zz" / saved.content_hash)
    for uri in (elsewhere, beside, "/etc/passwd"):
        with pytest.raises(ForeignArtifactError) as refused:
            version_folder(
                store, artifact_store_id=None, uri=uri, content_hash=saved.content_hash, name="x"
            )
        assert "outside this stack's artifact store" in refused.value.message
        assert uri not in refused.value.message


@pytest.mark.parametrize("content_hash", ["../../etc", "A" * 64, "a" * 63, ""])
def test_a_malformed_hash_is_refused(store: LocalArtifactStore, content_hash: str) -> None:
    identity, _ = claim_store(store, owner=OWNER, owner_url="u")
    with pytest.raises(ForeignArtifactError):
        version_folder(
            store, artifact_store_id=identity.id, uri="x", content_hash=content_hash, name="x"
        )


# -- local_path reads only the store's own folders ------------------------------------------


def test_local_path_refuses_a_folder_that_is_a_link_out_of_the_store(
    store: LocalArtifactStore, tmp_path: Path
) -> None:
    saved = save_artifact(store, [1], name="x")
    outside = tmp_path / "outside"
    shutil.move(saved.uri, outside)
    os.symlink(outside, saved.uri)  # the hash still matches: only containment refuses it
    with pytest.raises(ArtifactError, match="is not an artifact folder") as refused:
        store.local_path(saved.uri, saved.content_hash)
    assert str(outside) not in refused.value.message


def test_local_path_refuses_a_file_that_is_a_link_out_of_its_folder(
    store: LocalArtifactStore, tmp_path: Path
) -> None:
    saved = save_artifact(store, [1], name="x")
    secret = tmp_path / "secret.json"
    data = Path(saved.uri) / "data.json"
    secret.write_bytes(data.read_bytes())
    data.unlink()
    os.symlink(secret, data)
    with pytest.raises(ArtifactError, match="is not an artifact folder"):
        store.local_path(saved.uri, saved.content_hash)


def test_local_path_refuses_uris_outside_the_store(store: LocalArtifactStore) -> None:
    saved = save_artifact(store, [1], name="x")
    copy = Path(store.root).parent / "copy" / saved.content_hash[:2] / saved.content_hash
    shutil.copytree(saved.uri, copy)
    with pytest.raises(ArtifactError, match="is not an artifact folder"):
        store.local_path(str(copy), saved.content_hash)
    assert not store.exists(str(copy))


def test_a_hash_never_names_a_cache_folder_to_delete(
    memory: FsspecArtifactStore, tmp_path: Path
) -> None:
    """The download cache is keyed by content hash: a hash like '../x' once named a
    folder outside it, which a mismatch then deleted."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("keep me")
    save_artifact(memory, [1], name="x")
    relative = os.path.relpath(victim, memory.cache_dir)
    with pytest.raises(ArtifactError):
        memory.local_path(f"{memory.root}/ab/{relative}", relative)
    assert (victim / "precious").read_text() == "keep me"


def test_the_identity_file_format(store: LocalArtifactStore) -> None:
    identity, _ = claim_store(store, owner=OWNER, owner_url="sqlite:///a.db")
    written = json.loads((Path(store.root) / IDENTITY_FILE).read_text())
    assert written == {
        "format": 1,
        "id": identity.id,
        "owner": OWNER,
        "owner_url": "sqlite:///a.db",
        "created_at": identity.created_at,
    }
