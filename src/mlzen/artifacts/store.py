"""The artifact store interface: content-addressed folders of files.

An artifact is a folder of files written by a materializer. The store publishes it under
``<root>/<hash[:2]>/<hash>/`` where ``hash`` is the folder's content hash (see
:mod:`mlzen.artifacts.hashing`), so identical values share one copy and a reader can
always check the bytes it gets against the hash recorded for them.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from mlzen.errors import ArtifactCorruptedError, NotFoundError


@dataclass(frozen=True)
class StoredArtifact:
    """Where a published artifact lives and what it holds.

    Attributes:
        uri: The artifact's folder; an absolute path for a local store, a URL otherwise.
        content_hash: BLAKE3 hex digest of the folder's content.
        size: Total bytes of the artifact's files.
    """

    uri: str
    content_hash: str
    size: int


class ArtifactStore(ABC):
    """Content-addressed storage for artifact folders.

    Writing goes ``staging()`` → write files → ``publish()``; a reader sees either no
    folder or a complete one. Reading goes through ``local_path()``, which verifies the
    content hash before handing the folder out.
    """

    root: str

    @abstractmethod
    def staging(self) -> contextlib.AbstractContextManager[Path]:
        """An empty local folder to write an artifact's files into.

        The folder is removed on exit unless it was published.
        """

    @abstractmethod
    def publish(self, staging_dir: Path) -> StoredArtifact:
        """Hash ``staging_dir`` and move it to its content-addressed place.

        If an artifact with the same content already exists, it is kept and the staged
        copy is dropped.
        """

    @abstractmethod
    def local_path(self, uri: str, content_hash: str) -> Path:
        """A local folder holding the artifact's files, its content hash verified.

        Raises:
            NotFoundError: Nothing is stored at ``uri``.
            ArtifactCorruptedError: The stored files do not hash to ``content_hash``.
        """

    @abstractmethod
    def exists(self, uri: str) -> bool:
        """Whether an artifact folder is stored at ``uri``."""

    @abstractmethod
    def delete(self, uri: str) -> None:
        """Remove the artifact at ``uri``; nothing happens if it is already gone."""

    @abstractmethod
    def list_uris(self) -> list[str]:
        """The URIs of every published artifact, sorted."""


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
