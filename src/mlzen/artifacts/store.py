"""The artifact store interface: content-addressed folders of files.

An artifact is a folder of files written by a materializer. The store publishes it under
``<root>/<hash[:2]>/<hash>/`` where ``hash`` is the folder's content hash (see
:mod:`mlzen.artifacts.hashing`), so identical values share one copy and a reader can
always check the bytes it gets against the hash recorded for them.

Garbage collection (``mlzen gc``) deletes folders that no artifact version references.
A writer publishes a folder (or finds an identical one already there) before the
version row that references it is committed, so the store has a lock between the two:
writers hold :meth:`ArtifactStore.publishing` (shared) from before they publish until
their rows are committed, and the collector holds :meth:`ArtifactStore.collecting`
(exclusive) while it reads the referenced set and deletes. A store whose ``locking`` is
false cannot exclude writers; collect garbage there only when no pipeline writes.
"""

from __future__ import annotations

import contextlib
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from mlzen.errors import ArtifactCorruptedError, ArtifactError, NotFoundError

_HASH = re.compile(r"[0-9a-f]{64}")
#: The files at a store's root that say whose it is (see ``mlzen.artifacts.identity``):
#: ``.mlzen-store.json``, its identity, and ``.mlzen-store.<id>.json`` for each other
#: metadata store that records versions in it.
STORE_FILE = re.compile(r"\.mlzen-store(\.[0-9a-f]{32})?\.json")


@dataclass(frozen=True)
class StoredArtifact:
    """Where a published artifact lives and what it holds.

    Attributes:
        uri: The artifact's folder; an absolute path for a local store, a URL otherwise.
        content_hash: BLAKE3 hex digest of the folder's content.
        size: Total bytes of the artifact's files.
        files: Relative path → size of each of its files: the manifest recorded with
            its versions, so that a cheap check can tell a folder whose files were
            deleted or truncated from an intact one (see :meth:`ArtifactStore.has_files`).
    """

    uri: str
    content_hash: str
    size: int
    files: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class FolderStat:
    """Size and age of a stored folder, for garbage collection.

    Attributes:
        size: Total bytes of its files.
        modified: POSIX time of its newest change (publish, write), ``None`` if the
            store cannot tell.
    """

    size: int
    modified: float | None


@dataclass(frozen=True)
class Leftover:
    """A folder an interrupted write or delete left in the store; never read.

    Attributes:
        path: Where it is (a local path or a URL, like the store's URIs).
        size: Total bytes of its files.
        modified: POSIX time of its newest change, ``None`` if unknown.
    """

    path: str
    size: int
    modified: float | None


class ArtifactStore(ABC):
    """Content-addressed storage for artifact folders.

    Writing goes ``staging()`` → write files → ``publish()``; a reader sees either no
    folder or a complete one. Reading goes through ``local_path()``, which verifies the
    content hash before handing the folder out.
    """

    root: str
    #: Whether :meth:`publishing` and :meth:`collecting` really exclude each other.
    locking: ClassVar[bool] = False

    @abstractmethod
    def staging(self) -> contextlib.AbstractContextManager[Path]:
        """An empty local folder to write an artifact's files into.

        The folder is removed on exit unless it was published.
        """

    @abstractmethod
    def publish(self, staging_dir: Path) -> StoredArtifact:
        """Hash ``staging_dir`` and move it to its content-addressed place.

        If an artifact with the same content already exists, its files are verified
        against the staged ones first: an intact copy is kept and the staged one dropped;
        a damaged one (files changed, added or deleted) is replaced by the staged copy,
        so rerunning the step that produced an artifact repairs it.
        """

    @abstractmethod
    def local_path(self, uri: str, content_hash: str) -> Path:
        """A local folder holding the artifact's files, its content hash verified.

        ``uri`` must be this store's folder for ``content_hash`` (see :meth:`contains`);
        nothing elsewhere is read, and no link leading out of the store is followed.

        Raises:
            ArtifactError: ``uri`` is not a folder of this store.
            NotFoundError: Nothing is stored at ``uri``.
            ArtifactCorruptedError: The stored files do not hash to ``content_hash``.
        """

    @abstractmethod
    def exists(self, uri: str) -> bool:
        """Whether an artifact folder is stored at ``uri``."""

    def has_files(self, uri: str, files: Mapping[str, int]) -> bool:
        """Whether the artifact at ``uri`` holds exactly ``files`` (relative path → size).

        A cheap check, by names and sizes without reading the files (a cache hit asks
        it before reusing an output); only the hash check of a read finds changed bytes.
        The default checks existence only, for stores that cannot list sizes.
        """
        return self.exists(uri)

    @abstractmethod
    def delete(self, uri: str) -> None:
        """Remove the artifact at ``uri``; nothing happens if it is already gone."""

    @abstractmethod
    def list_uris(self) -> list[str]:
        """The URIs of every published artifact, sorted."""

    # -- identity and containment (see mlzen.artifacts.identity) ---------------------------

    def folder_uri(self, content_hash: str) -> str:
        """The URI of the folder that holds the content ``content_hash`` in this store."""
        return f"{self.root.rstrip('/')}/{content_hash[:2]}/{content_hash}"

    def contains(self, uri: str) -> bool:
        """Whether ``uri`` is this store's folder for the content hash it is named after.

        Decided from the text of ``uri`` alone, so asking says nothing about what exists
        elsewhere.
        """
        name = uri.rstrip("/").rpartition("/")[2]
        return _HASH.fullmatch(name) is not None and uri.rstrip("/") == self.folder_uri(name)

    def read_store_file(self, name: str) -> bytes | None:
        """The bytes of the store file ``name`` (see :data:`STORE_FILE`) at the root;
        ``None`` if there is none.

        The default keeps no store files, so the store has no identity; stores that can
        should override the three methods.
        """
        return None

    def create_store_file(self, name: str, data: bytes) -> bytes | None:
        """Write the store file ``name`` unless it exists; return the bytes it now holds.

        ``None`` means the store cannot keep one (the default).
        """
        return None

    def list_store_files(self) -> list[str]:
        """The names of the store files at the root."""
        return []

    # -- garbage collection -------------------------------------------------------------

    def publishing(self) -> contextlib.AbstractContextManager[None]:
        """Held (shared) by a writer from before it publishes until its versions are
        recorded, so that garbage collection never sees the folders unreferenced.

        The default holds nothing: see ``locking``.
        """
        return contextlib.nullcontext()

    def collecting(
        self, on_wait: Callable[[], None] | None = None
    ) -> contextlib.AbstractContextManager[None]:
        """Held (exclusively) by garbage collection while it reads what is referenced
        and deletes the rest; waits for every writer inside :meth:`publishing`.

        Args:
            on_wait: Called once if the lock is not free at once (to tell the user).
        """
        return contextlib.nullcontext()

    def stat_folder(self, uri: str) -> FolderStat:
        """Size and age of the artifact folder at ``uri``.

        Raises:
            NotFoundError: Nothing is stored at ``uri``.
        """
        raise NotImplementedError(f"{type(self).__qualname__} does not implement stat_folder().")

    def list_leftovers(self) -> list[Leftover]:
        """Folders that interrupted writes or deletes left behind (staging, trash)."""
        return []

    def delete_leftover(self, path: str) -> None:
        """Remove a folder returned by :meth:`list_leftovers`; nothing if already gone."""
        raise NotImplementedError(
            f"{type(self).__qualname__} does not implement delete_leftover()."
        )


def artifact_store_for(root: str) -> ArtifactStore:
    """The artifact store for ``root``.

    Args:
        root: A local path or ``file://`` URL (a :class:`LocalArtifactStore`), or any
            other fsspec URL such as ``s3://bucket/artifacts`` or ``memory://artifacts``
            (a :class:`FsspecArtifactStore`).
    """
    root = str(root)
    if root.startswith("file://"):
        root = root.removeprefix("file://")
    elif "://" in root:
        from mlzen.artifacts.fsspec import FsspecArtifactStore

        return FsspecArtifactStore(root)
    from mlzen.artifacts.local import LocalArtifactStore

    return LocalArtifactStore(root)


def missing_error(uri: str, root: str) -> NotFoundError:
    """The error for an artifact folder that is not in the store."""
    return NotFoundError(
        f"Artifact {uri} does not exist in the artifact store {root}. It was deleted or "
        "the store moved: rerun the step that produced it with caching off, or point "
        "MLZEN_ARTIFACT_ROOT at the store that holds it.",
        artifact_uri=uri,
    )


def check_store_file(name: str) -> str:
    """``name`` if it is a store file's name (nothing else is written at the root)."""
    if not STORE_FILE.fullmatch(name):
        raise ArtifactError(
            f"'{name}' is not the name of a store file ({STORE_FILE.pattern}).",
            artifact_uri=name,
        )
    return name


def outside_error(uri: str, root: str) -> ArtifactError:
    """The error for a location that is not (links resolved) a folder of the store.

    Decided before anything at ``uri`` is looked at, so it says nothing about it.
    """
    return ArtifactError(
        f"{uri} is not an artifact folder of the artifact store {root}, so it is not "
        "read. Read artifact versions through the stack whose artifact store holds them "
        "(ArtifactVersion.load(), local_path()).",
        artifact_uri=uri,
    )


def corrupted_error(uri: str, *, expected: str, actual: str) -> ArtifactCorruptedError:
    """The error for stored files that no longer hash to the recorded content hash."""
    return ArtifactCorruptedError(
        f"Artifact {uri} is corrupted: its files hash to {actual}, but {expected} was "
        "recorded when it was saved. Rerun the step that produced it with caching off, "
        "or restore the artifact's files from a backup.",
        artifact_uri=uri,
        expected_hash=expected,
        actual_hash=actual,
    )
