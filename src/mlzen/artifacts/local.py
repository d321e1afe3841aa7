"""The artifact store on a local (or mounted) filesystem.

Layout under the root::

    .staging/<uuid>/          folders being written; never read
    .trash/<uuid>/            folders being deleted; never read
    <hash[:2]>/<hash>/        published artifacts

Staging lives under the root, on the same filesystem as the published folders, so
publishing is a single ``os.rename`` of a complete folder: a reader (or a crashed
writer) never leaves or sees a half-written artifact under its final name. Files are
not fsynced; should the machine lose power right after a publish, the content hash that
``local_path`` checks on every read reports the damaged artifact instead of loading it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from mlzen.artifacts.hashing import hash_folder
from mlzen.artifacts.store import ArtifactStore, StoredArtifact, corrupted_error, missing_error
from mlzen.errors import ArtifactError

STAGING_DIR = ".staging"
TRASH_DIR = ".trash"
_HASH = re.compile(r"[0-9a-f]{64}")
_PREFIX = re.compile(r"[0-9a-f]{2}")


class LocalArtifactStore(ArtifactStore):
    """Artifacts as folders under a local root, published by atomic rename.

    Args:
        root: The folder holding the artifacts; created on the first write.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.path.abspath(os.path.expanduser(os.fspath(root)))
        self._root = Path(self.root)
        self._staging_root = self._root / STAGING_DIR

    def __repr__(self) -> str:
        return f"LocalArtifactStore({self.root!r})"

    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        folder = self._staging_root / uuid.uuid4().hex
        folder.mkdir(parents=True)
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def publish(self, staging_dir: Path) -> StoredArtifact:
        staging_dir = Path(staging_dir)
        if Path(os.path.abspath(staging_dir)).parent != self._staging_root:
            raise ArtifactError(
                f"{staging_dir} is not a staging folder of the artifact store {self.root}, "
                "so it cannot be published by an atomic rename. Write the files into the "
                "folder that store.staging() yields.",
                artifact_uri=str(staging_dir),
            )
        content_hash, size = hash_folder(staging_dir)
        target = self._folder_for(content_hash)
        if not target.is_dir():
            target.parent.mkdir(exist_ok=True)
            try:
                os.rename(staging_dir, target)
            except OSError:
                # Another writer published the same content between the check and the
                # rename; its folder is as good as ours.
                if not target.is_dir():
                    raise
        shutil.rmtree(staging_dir, ignore_errors=True)
        return StoredArtifact(uri=str(target), content_hash=content_hash, size=size)

    def local_path(self, uri: str, content_hash: str) -> Path:
        path = Path(uri)
        if not path.is_dir():
            raise missing_error(uri, self.root)
        actual, _ = hash_folder(path)
        if actual != content_hash:
            raise corrupted_error(uri, expected=content_hash, actual=actual)
        return path

    def exists(self, uri: str) -> bool:
        return Path(uri).is_dir()

    def delete(self, uri: str) -> None:
        path = self._owned_folder(uri)
        trash = self._root / TRASH_DIR / uuid.uuid4().hex
        trash.parent.mkdir(parents=True, exist_ok=True)
        # Renamed away first so that no reader ever sees a half-deleted folder.
        try:
            os.rename(path, trash)
        except FileNotFoundError:
            return
        shutil.rmtree(trash, ignore_errors=True)

    def list_uris(self) -> list[str]:
        if not self._root.is_dir():
            return []
        uris: list[str] = []
        for prefix in os.scandir(self._root):
            if not (prefix.is_dir() and _PREFIX.fullmatch(prefix.name)):
                continue
            for entry in os.scandir(prefix.path):
                if entry.is_dir() and _HASH.fullmatch(entry.name) and entry.name[:2] == prefix.name:
                    uris.append(entry.path)
        return sorted(uris)

    def _folder_for(self, content_hash: str) -> Path:
        return self._root / content_hash[:2] / content_hash

    def _owned_folder(self, uri: str) -> Path:
        path = Path(os.path.abspath(uri))
        if not _HASH.fullmatch(path.name) or path != self._folder_for(path.name):
            raise ArtifactError(
                f"{uri} is not an artifact folder of the artifact store {self.root}, so it "
                "will not be deleted. Pass a uri from list_uris() or from a recorded "
                "artifact version.",
                artifact_uri=uri,
            )
        return path
