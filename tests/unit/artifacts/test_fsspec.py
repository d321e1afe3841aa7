from __future__ import annotations

import json
import pickle
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pandas as pd
import pytest

from mlzen.artifacts.fsspec import MARKER_SUFFIX, FsspecArtifactStore, default_cache_dir
from mlzen.artifacts.hashing import hash_folder
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


def published_files(content_hash: str, *names: str) -> list[str]:
    """What a published artifact holds in the store: its files, then its marker."""
    folder = f"{content_hash[:2]}/{content_hash}"
    return sorted([*(f"{folder}/{name}" for name in names), f"{folder}{MARKER_SUFFIX}"])


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

    assert remote_files(remote) == published_files(saved.content_hash, "data.json")
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
    assert remote_files(remote) == published_files(saved.content_hash, "data.json")
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
    with pytest.raises(ArtifactError, match="is not an artifact folder of the artifact store"):
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


# -- completion markers: a publish is atomic ---------------------------------------------


def folder_path(store: FsspecArtifactStore, uri: str) -> str:
    return store._path(uri)


def test_the_marker_lists_the_files_and_is_written_last(
    remote: FsspecArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    order: list[str] = []
    put, pipe_file = remote._fs.put, remote._fs.pipe_file

    def recording_put(lpaths: list[str], rpaths: list[str], **kwargs: object) -> object:
        order.extend(rpaths)
        return put(lpaths, rpaths, **kwargs)

    def recording_pipe_file(path: str, value: bytes, **kwargs: object) -> object:
        order.append(path)
        return pipe_file(path, value, **kwargs)

    monkeypatch.setattr(remote._fs, "put", recording_put)
    monkeypatch.setattr(remote._fs, "pipe_file", recording_pipe_file)
    frame = pd.DataFrame({"a": [1, 2]})

    saved = save_artifact(remote, frame, name="x")

    folder = folder_path(remote, saved.uri)
    assert order == [f"{folder}/data.parquet", folder + MARKER_SUFFIX]
    marker = json.loads(remote._fs.cat_file(folder + MARKER_SUFFIX))
    size = remote._fs.info(f"{folder}/data.parquet")["size"]
    assert marker == {
        "format": 1,
        "content_hash": saved.content_hash,
        "files": {"data.parquet": size},
    }


def test_a_folder_without_its_marker_is_absent(remote: FsspecArtifactStore) -> None:
    saved = save_artifact(remote, [1, 2], name="x")
    remote._fs.rm_file(folder_path(remote, saved.uri) + MARKER_SUFFIX)

    assert not remote.exists(saved.uri)
    assert remote.list_uris() == []
    with pytest.raises(NotFoundError):
        remote.local_path(saved.uri, saved.content_hash)
    with pytest.raises(NotFoundError):
        remote.stat_folder(saved.uri)
    leftovers = remote.list_leftovers()
    assert [(leftover.path, leftover.size) for leftover in leftovers] == [(saved.uri, saved.size)]


def test_a_torn_marker_counts_as_absent(remote: FsspecArtifactStore) -> None:
    saved = save_artifact(remote, [1, 2], name="x")
    remote._fs.pipe_file(folder_path(remote, saved.uri) + MARKER_SUFFIX, b'{"files": {"da')

    assert not remote.exists(saved.uri)
    assert save_artifact(remote, [1, 2], name="x").uri == saved.uri  # completes it again
    assert remote.exists(saved.uri)


def test_a_publish_completes_an_interrupted_one_uploading_only_what_is_missing(
    remote: FsspecArtifactStore, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    staged = tmp_path / "staged"
    (staged / "sub").mkdir(parents=True)
    (staged / "a.bin").write_bytes(b"a" * 10)
    (staged / "sub" / "b.bin").write_bytes(b"b" * 20)
    content_hash, _ = hash_folder(staged)
    folder = f"{remote._root_path}/{content_hash[:2]}/{content_hash}"
    remote._fs.pipe_file(f"{folder}/a.bin", b"a" * 10)  # the writer died after this file
    uploaded: list[str] = []
    put = remote._fs.put

    def recording_put(lpaths: list[str], rpaths: list[str], **kwargs: object) -> object:
        uploaded.extend(rpaths)
        return put(lpaths, rpaths, **kwargs)

    monkeypatch.setattr(remote._fs, "put", recording_put)
    uri = f"{remote.root}/{content_hash[:2]}/{content_hash}"
    assert not remote.exists(uri)

    stored = remote.publish(staged)

    assert stored.uri == uri and stored.content_hash == content_hash
    assert uploaded == [f"{folder}/sub/b.bin"]
    assert remote.exists(uri) and remote.list_uris() == [uri]
    assert hash_folder(remote.local_path(uri, content_hash))[0] == content_hash
    assert remote.list_leftovers() == []


def test_dedupe_writes_nothing(
    remote: FsspecArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_artifact(remote, {"a": 1}, name="x")

    def no_write(*args: object, **kwargs: object) -> None:
        raise AssertionError("wrote to the store")

    monkeypatch.setattr(remote._fs, "put", no_write)
    monkeypatch.setattr(remote._fs, "pipe_file", no_write)
    save_artifact(remote, {"a": 1}, name="y")


def test_reads_download_only_the_listed_files(remote: FsspecArtifactStore) -> None:
    saved = save_artifact(remote, "value", name="x")
    # A file that appeared after the publish (tampering): the marker does not list it.
    remote._fs.pipe_file(folder_path(remote, saved.uri) + "/extra", b"not part of it")

    assert load(remote, saved) == "value"
    assert sorted(p.name for p in remote.local_path(saved.uri, saved.content_hash).iterdir()) == [
        "data.json"
    ]


def test_a_listed_file_gone_missing_is_not_found_and_a_publish_repairs_it(
    remote: FsspecArtifactStore,
) -> None:
    saved = save_artifact(remote, "value", name="x")
    remote._fs.rm_file(folder_path(remote, saved.uri) + "/data.json")

    assert remote.exists(saved.uri)  # by its marker; reading finds out
    with pytest.raises(NotFoundError, match=saved.uri):
        load(remote, saved)

    save_artifact(remote, "value", name="x")
    assert load(remote, saved) == "value"


def test_delete_removes_the_marker_then_the_files(remote: FsspecArtifactStore) -> None:
    saved = save_artifact(remote, [1], name="x")
    other = save_artifact(remote, [2], name="y")

    remote.delete(saved.uri)
    remote.delete(saved.uri)  # already gone: nothing happens

    assert remote_files(remote) == published_files(other.content_hash, "data.json")
    assert remote.list_uris() == [other.uri]


def test_leftovers_of_interrupted_publishes_can_be_deleted(remote: FsspecArtifactStore) -> None:
    saved = save_artifact(remote, [1], name="x")
    unfinished = save_artifact(remote, [2], name="y")
    remote._fs.rm_file(folder_path(remote, unfinished.uri) + MARKER_SUFFIX)

    remote.delete_leftover(saved.uri)  # complete: an artifact, not a leftover; kept
    remote.delete_leftover(unfinished.uri)

    assert remote_files(remote) == published_files(saved.content_hash, "data.json")
    assert remote.list_leftovers() == []
    with pytest.raises(ArtifactError, match="will not be deleted"):
        remote.delete_leftover(f"{remote.root}/elsewhere")


def test_stat_folder_counts_the_files(remote: FsspecArtifactStore) -> None:
    saved = save_artifact(remote, list(range(100)), name="x")

    stat = remote.stat_folder(saved.uri)

    assert stat.size >= saved.size
    assert stat.modified is None or stat.modified > 0


def test_an_empty_artifact_round_trips(remote: FsspecArtifactStore, tmp_path: Path) -> None:
    staged = tmp_path / "empty"
    staged.mkdir()

    stored = remote.publish(staged)

    assert remote.exists(stored.uri)
    assert list(remote.local_path(stored.uri, stored.content_hash).iterdir()) == []


def test_check_writes_and_removes_a_probe(remote: FsspecArtifactStore) -> None:
    remote.check()

    assert remote_files(remote) == []
    assert remote._fs.ls(f"{remote._root_path}/.staging", detail=False) == []
    assert remote.list_leftovers() == []


def test_check_names_a_store_it_cannot_write(
    remote: FsspecArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(*args: object, **kwargs: object) -> None:
        raise PermissionError("read-only")

    monkeypatch.setattr(remote._fs, "pipe_file", refused)

    with pytest.raises(ArtifactError, match=f"{remote.root} cannot be used.*read-only"):
        remote.check()


def test_the_store_pickles_without_its_connection(remote: FsspecArtifactStore) -> None:
    saved = save_artifact(remote, "across", name="x")

    copy = pickle.loads(pickle.dumps(remote))

    assert copy._filesystem is None
    assert load(copy, saved) == "across"


def test_a_publish_replaces_a_file_changed_in_place(
    remote: FsspecArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved = save_artifact(remote, "value", name="x")
    path = folder_path(remote, saved.uri) + "/data.json"
    remote._fs.pipe_file(path, b'"VALUE"')  # same size, other bytes
    markers: list[bool] = []
    put = remote._fs.put

    def put_and_look(lpaths: list[str], rpaths: list[str], **kwargs: object) -> object:
        markers.append(remote.exists(saved.uri))
        return put(lpaths, rpaths, **kwargs)

    monkeypatch.setattr(remote._fs, "put", put_and_look)

    again = save_artifact(remote, "value", name="x")

    assert again.uri == saved.uri
    assert markers == [False]  # absent while it was repaired, never half repaired
    assert remote._fs.cat_file(path) == b'"value"'
    assert load(remote, saved) == "value"


def test_has_files_compares_names_and_sizes(remote: FsspecArtifactStore) -> None:
    saved = save_artifact(remote, [1, 2, 3], name="x")
    path = folder_path(remote, saved.uri) + "/data.json"

    assert saved.files == {"data.json": len(remote._fs.cat_file(path))}
    assert remote.has_files(saved.uri, saved.files)
    assert not remote.has_files(saved.uri, {"data.json": 1})
    remote._fs.rm_file(path)
    assert remote.exists(saved.uri) and not remote.has_files(saved.uri, saved.files)
    remote.delete(saved.uri)
    assert not remote.has_files(saved.uri, saved.files)
