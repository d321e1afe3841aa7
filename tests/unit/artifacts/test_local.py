from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mlzen.artifacts.local import LocalArtifactStore
from mlzen.artifacts.materializer import save_artifact
from mlzen.artifacts.store import artifact_store_for
from mlzen.errors import ArtifactCorruptedError, ArtifactError, NotFoundError


def publish(store: LocalArtifactStore, files: dict[str, bytes]):
    with store.staging() as folder:
        for relpath, data in files.items():
            (folder / relpath).write_bytes(data)
        return store.publish(folder)


def test_root_is_created_lazily(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "later")

    assert not (tmp_path / "later").exists()
    assert store.list_uris() == []
    publish(store, {"a": b"1"})
    assert (tmp_path / "later").is_dir()


def test_publish_puts_the_folder_under_its_hash(store: LocalArtifactStore) -> None:
    stored = publish(store, {"data.json": b"[1, 2]"})

    assert stored.uri == os.path.join(store.root, stored.content_hash[:2], stored.content_hash)
    assert (Path(stored.uri) / "data.json").read_bytes() == b"[1, 2]"
    assert stored.size == 6
    assert store.exists(stored.uri)
    assert store.list_uris() == [stored.uri]


def test_staging_is_inside_the_root_and_removed_when_not_published(
    store: LocalArtifactStore,
) -> None:
    with store.staging() as folder:
        (folder / "a").write_bytes(b"1")
        assert Path(store.root) in folder.parents
        assert list(folder.iterdir()) == [folder / "a"]
    assert not folder.exists()
    assert store.list_uris() == []


def test_identical_content_is_stored_once(store: LocalArtifactStore) -> None:
    first = publish(store, {"a": b"same"})
    second = publish(store, {"a": b"same"})

    assert first == second
    assert store.list_uris() == [first.uri]
    assert list((Path(store.root) / ".staging").iterdir()) == []


def test_concurrent_identical_publishes_share_one_folder(store: LocalArtifactStore) -> None:
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: publish(store, {"a": b"x" * 1000}), range(32)))

    assert {r.uri for r in results} == {results[0].uri}
    assert store.list_uris() == [results[0].uri]
    assert list((Path(store.root) / ".staging").iterdir()) == []


def test_publish_refuses_a_folder_outside_the_staging_area(
    store: LocalArtifactStore, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    with pytest.raises(ArtifactError, match=r"store\.staging\(\)"):
        store.publish(elsewhere)


def test_local_path_verifies_and_returns_the_folder(store: LocalArtifactStore) -> None:
    stored = publish(store, {"a": b"1"})

    assert store.local_path(stored.uri, stored.content_hash) == Path(stored.uri)


@pytest.mark.parametrize(
    "damage",
    [
        lambda folder: (folder / "a").write_bytes(b"2"),
        lambda folder: (folder / "extra").write_bytes(b""),
        lambda folder: (folder / "a").unlink(),
    ],
    ids=["changed", "added", "removed"],
)
def test_damaged_files_raise_corrupted_naming_the_uri(store: LocalArtifactStore, damage) -> None:
    stored = publish(store, {"a": b"1"})
    damage(Path(stored.uri))

    with pytest.raises(ArtifactCorruptedError) as info:
        store.local_path(stored.uri, stored.content_hash)

    error = info.value
    assert stored.uri in str(error)
    assert stored.content_hash in str(error)
    assert error.artifact_uri == stored.uri
    assert error.expected_hash == stored.content_hash
    assert error.actual_hash != stored.content_hash
    assert str(error).endswith("restore the artifact's files from a backup.")


def test_missing_artifact_raises_not_found(store: LocalArtifactStore) -> None:
    uri = os.path.join(store.root, "ab", "ab" * 32)

    with pytest.raises(NotFoundError, match="does not exist") as info:
        store.local_path(uri, "ab" * 32)

    assert info.value.artifact_uri == uri
    assert not store.exists(uri)


def test_delete_removes_the_folder_and_is_idempotent(store: LocalArtifactStore) -> None:
    kept = publish(store, {"a": b"kept"})
    gone = publish(store, {"a": b"gone"})

    store.delete(gone.uri)
    store.delete(gone.uri)

    assert store.list_uris() == [kept.uri]
    assert not store.exists(gone.uri)
    assert list((Path(store.root) / ".trash").iterdir()) == []


@pytest.mark.parametrize("relative", ["", "ab", ".staging", "ab/not-a-hash", "cd/" + "ab" * 32])
def test_delete_refuses_anything_but_an_artifact_folder(
    store: LocalArtifactStore, relative: str
) -> None:
    with pytest.raises(ArtifactError, match="will not be deleted"):
        store.delete(os.path.join(store.root, relative))


def test_list_uris_ignores_staging_trash_and_strays(store: LocalArtifactStore) -> None:
    stored = publish(store, {"a": b"1"})
    root = Path(store.root)
    (root / "zz").mkdir()
    (root / "ab" / "not-a-hash").mkdir(parents=True)
    (root / "README").write_text("stray")
    with store.staging():
        assert store.list_uris() == [stored.uri]


def test_failed_save_leaves_no_folder_behind(store: LocalArtifactStore) -> None:
    from mlzen.artifacts.materializer import Materializer
    from mlzen.errors import MaterializerError

    class HalfWriter(Materializer):
        def save(self, value, folder: Path) -> None:
            (folder / "part-1").write_bytes(b"written")
            raise OSError("disk full")

    earlier = save_artifact(store, 1, name="earlier")

    with pytest.raises(MaterializerError):
        save_artifact(store, 2, name="broken", materializer=HalfWriter)

    root = Path(store.root)
    assert store.list_uris() == [earlier.uri]
    assert list((root / ".staging").iterdir()) == []
    assert sorted(p.name for p in root.iterdir()) == [".staging", earlier.content_hash[:2]]


def test_artifact_store_for_picks_the_store_by_url(tmp_path: Path) -> None:
    from mlzen.artifacts.fsspec import FsspecArtifactStore

    local = artifact_store_for(str(tmp_path / "a"))
    file_url = artifact_store_for(f"file://{tmp_path / 'b'}")
    memory = artifact_store_for("memory://mlzen-test-store-for")

    assert isinstance(local, LocalArtifactStore) and local.root == str(tmp_path / "a")
    assert isinstance(file_url, LocalArtifactStore) and file_url.root == str(tmp_path / "b")
    assert isinstance(memory, FsspecArtifactStore)
    assert artifact_store_for(local.root).root == local.root


DAMAGES = {
    "changed": lambda folder: (folder / "a").write_bytes(b"X" * 4),
    "added": lambda folder: (folder / "stray").write_bytes(b""),
    "removed": lambda folder: (folder / "a").unlink(),
    "emptied": lambda folder: [p.unlink() for p in folder.iterdir()],
}


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_publish_replaces_a_damaged_copy_of_the_same_content(
    store: LocalArtifactStore, damage: str, exchange: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlzen.artifacts import local

    if not exchange:  # as on a platform or filesystem without RENAME_EXCHANGE
        monkeypatch.setattr(local, "_exchange", lambda first, second: False)
    stored = publish(store, {"a": b"good", "b": b"also"})
    DAMAGES[damage](Path(stored.uri))

    again = publish(store, {"a": b"good", "b": b"also"})

    assert again == stored
    assert store.local_path(stored.uri, stored.content_hash) == Path(stored.uri)
    assert (Path(stored.uri) / "a").read_bytes() == b"good"
    assert store.list_uris() == [stored.uri]
    root = Path(store.root)
    assert [
        p for d in (".staging", ".trash") if (root / d).is_dir() for p in (root / d).iterdir()
    ] == []


def test_publish_reuses_an_intact_copy(store: LocalArtifactStore) -> None:
    stored = publish(store, {"a": b"1"})
    inode = os.stat(stored.uri).st_ino

    publish(store, {"a": b"1"})

    assert os.stat(stored.uri).st_ino == inode


def test_concurrent_repairs_leave_one_good_copy(store: LocalArtifactStore) -> None:
    stored = publish(store, {"a": b"x" * 1000})
    (Path(stored.uri) / "a").write_bytes(b"y" * 1000)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: publish(store, {"a": b"x" * 1000}), range(16)))

    assert {r.uri for r in results} == {stored.uri}
    assert store.local_path(stored.uri, stored.content_hash) == Path(stored.uri)


def test_has_files_compares_names_and_sizes(store: LocalArtifactStore) -> None:
    stored = publish(store, {"a": b"12", "b": b"345"})

    assert stored.files == {"a": 2, "b": 3}
    assert store.has_files(stored.uri, stored.files)
    (Path(stored.uri) / "b").write_bytes(b"3")
    assert not store.has_files(stored.uri, stored.files)
    (Path(stored.uri) / "b").unlink()
    assert not store.has_files(stored.uri, stored.files)
    store.delete(stored.uri)
    assert not store.has_files(stored.uri, stored.files)
