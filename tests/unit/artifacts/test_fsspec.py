from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pandas as pd
import pytest

from mlzen.artifacts.fsspec import FsspecArtifactStore, default_cache_dir
from mlzen.artifacts.materializer import save_artifact
from mlzen.errors import ArtifactCorruptedError, ArtifactError, NotFoundError

from .helpers import load, roundtrip


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[FsspecArtifactStore]:
    """A store on fsspec's in-memory filesystem, with its own root and local cache."""
    store = FsspecArtifactStore(
        f"memory://mlzen-test-{uuid.uuid4().hex}", cache_dir=tmp_path / "cache"
    )
    yield store
    memory = fsspec.filesystem("memory")
    if memory.exists(store._root_path):
        memory.rm(store._root_path, recursive=True)


def remote_files(store: FsspecArtifactStore) -> list[str]:
    root = store._root_path
    return sorted(path[len(root) + 1 :] for path in store._fs.find(root))


def test_values_round_trip(remote: FsspecArtifactStore) -> None:
    frame = pd.DataFrame({"a": [1, 2, None]}, index=pd.Index(["x", "y", "z"]))

    saved, loaded = roundtrip(remote, frame)
    _, number = roundtrip(remote, 42)

    pd.testing.assert_frame_equal(loaded, frame)
    assert number == 42
    assert saved.uri == f"{remote.root}/{saved.content_hash[:2]}/{saved.content_hash}"
    assert remote.exists(saved.uri)


def test_publish_leaves_only_the_final_folder(remote: FsspecArtifactStore) -> None:
    saved = save_artifact(remote, [1, 2], name="x")

    assert remote_files(remote) == [f"{saved.content_hash[:2]}/{saved.content_hash}/data.json"]
    assert remote.list_uris() == [saved.uri]


def test_identical_values_are_stored_once(remote: FsspecArtifactStore) -> None:
    first = save_artifact(remote, {"a": 1}, name="x")
    second = save_artifact(remote, {"a": 1}, name="y")

    assert first.uri == second.uri
    assert remote.list_uris() == [first.uri]


def test_publish_completes_a_partial_folder(remote: FsspecArtifactStore) -> None:
    saved = save_artifact(remote, [1], name="x")
    remote._fs.rm(remote._path(saved.uri) + "/data.json")
    remote._fs.pipe(remote._path(saved.uri) + "/stray", b"left by a crash")

    again = save_artifact(remote, [1], name="x")

    assert again.uri == saved.uri
    assert remote_files(remote) == [f"{saved.content_hash[:2]}/{saved.content_hash}/data.json"]
    assert load(remote, again) == [1]


def test_reads_come_from_the_verified_local_cache(
    remote: FsspecArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved = save_artifact(remote, "cached", name="x")
    folder = remote.local_path(saved.uri, saved.content_hash)
    assert folder == remote.cache_dir / saved.content_hash

    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("downloaded again")

    monkeypatch.setattr(remote._fs, "get", no_download)
    assert load(remote, saved) == "cached"


def test_a_damaged_cache_copy_is_fetched_again(remote: FsspecArtifactStore) -> None:
    saved = save_artifact(remote, "fresh", name="x")
    folder = remote.local_path(saved.uri, saved.content_hash)
    (folder / "data.json").write_text('"stale"')

    assert load(remote, saved) == "fresh"


def test_corrupted_remote_raises_naming_the_uri(remote: FsspecArtifactStore) -> None:
    saved = save_artifact(remote, "original", name="x")
    remote._fs.pipe(remote._path(saved.uri) + "/data.json", b'"tampered"')

    with pytest.raises(ArtifactCorruptedError) as info:
        load(remote, saved)

    assert saved.uri in str(info.value)
    assert info.value.artifact_uri == saved.uri
    assert list(remote.cache_dir.iterdir()) == []  # nothing unverified is kept


def test_missing_artifact_raises_not_found(remote: FsspecArtifactStore) -> None:
    saved = save_artifact(remote, 1, name="x")
    remote.delete(saved.uri)

    with pytest.raises(NotFoundError) as info:
        load(remote, saved)

    assert info.value.artifact_uri == saved.uri
    assert not remote.exists(saved.uri)
    assert remote.list_uris() == []


def test_uris_of_other_stores_are_refused(remote: FsspecArtifactStore) -> None:
    with pytest.raises(ArtifactError, match="is not in the artifact store"):
        remote.local_path("memory://elsewhere/ab/" + "ab" * 32, "ab" * 32)
    with pytest.raises(ArtifactError, match="will not be deleted"):
        remote.delete(f"{remote.root}/ab/not-a-hash")


def test_staging_is_a_local_folder_removed_on_exit(remote: FsspecArtifactStore) -> None:
    with remote.staging() as folder:
        (folder / "a").write_bytes(b"1")
    assert not folder.exists()
    assert remote.list_uris() == []


def test_default_cache_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))

    assert default_cache_dir() == tmp_path / "mlzen" / "artifacts"
    assert FsspecArtifactStore("memory://x").cache_dir == tmp_path / "mlzen" / "artifacts"
