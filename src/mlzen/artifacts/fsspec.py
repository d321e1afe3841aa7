"""The artifact store on any fsspec filesystem (S3, GCS, Azure, memory, ...).

Materializers write into a local temporary folder. Publishing hashes it, uploads the
files under ``<root>/.staging/<uuid>/``, copies them to ``<root>/<hash[:2]>/<hash>/``
and removes the staging prefix.

What is atomic: each file. Object stores have no folder rename, so the final folder
fills in one file at a time while the (server-side) copies run; the slow upload happens
beforehand, off the final key, which keeps that window short. A reader that catches a
folder half-filled, or one left so by a crashed writer, never gets wrong data:
``local_path`` verifies the content hash of everything it downloads and raises
``ArtifactCorruptedError``. A later publish of the same content compares the folder's
listing with its own files and completes the folder instead of trusting it.

Reading downloads the folder into a local cache (``$XDG_CACHE_HOME/mlzen/artifacts``,
by default ``~/.cache/mlzen/artifacts``) keyed by content hash; a cached copy is
re-verified on every read and fetched again if it was damaged. Nothing evicts it.

There is no lock between writers and garbage collection (``locking`` is false; object
stores have no ``flock``): ``publishing()`` and ``collecting()`` hold nothing. A writer's
folder is unreferenced from its publish until its version row is committed, and a
publish of content that is already stored reuses the folder without writing to it, so
``mlzen gc`` on such a store deletes only folders older than its ``--min-age`` (an hour
by default) and must not run while pipelines write to the store.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlzen.artifacts.hashing import FileEntry, combine, hash_file, hash_folder, list_files
from mlzen.artifacts.store import (
    ArtifactStore,
    FolderStat,
    Leftover,
    StoredArtifact,
    corrupted_error,
    missing_error,
)
from mlzen.errors import ArtifactError

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

STAGING_DIR = ".staging"
_HASH = re.compile(r"[0-9a-f]{64}")
_PREFIX = re.compile(r"[0-9a-f]{2}")


def default_cache_dir() -> Path:
    """Where downloaded artifacts are kept: ``$XDG_CACHE_HOME/mlzen/artifacts``."""
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "mlzen" / "artifacts"


class FsspecArtifactStore(ArtifactStore):
    """Artifacts as folders on an fsspec filesystem, read through a local cache.

    Args:
        url: The root URL, e.g. ``s3://bucket/artifacts`` or ``memory://artifacts``.
        cache_dir: Local folder for downloaded artifacts; defaults to
            :func:`default_cache_dir`.
        **storage_options: Passed to the fsspec filesystem (credentials, endpoint, ...).
    """

    def __init__(
        self,
        url: str,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        **storage_options: Any,
    ) -> None:
        self.root = url.rstrip("/")
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._storage_options = storage_options
        self._filesystem: tuple[AbstractFileSystem, str] | None = None

    def __repr__(self) -> str:
        return f"FsspecArtifactStore({self.root!r})"

    @property
    def _fs(self) -> AbstractFileSystem:
        return self._connect()[0]

    @property
    def _root_path(self) -> str:
        return self._connect()[1]

    def _connect(self) -> tuple[AbstractFileSystem, str]:
        if self._filesystem is None:
            from fsspec.core import url_to_fs

            fs, path = url_to_fs(self.root, **self._storage_options)
            self._filesystem = (fs, path.rstrip("/"))
        return self._filesystem

    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        folder = Path(tempfile.mkdtemp(prefix="mlzen-staging-"))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def publish(self, staging_dir: Path) -> StoredArtifact:
        files = list_files(Path(staging_dir))
        content_hash = combine([(f.relpath, f.size, hash_file(f.path, f.size)) for f in files])
        target = f"{self._root_path}/{content_hash[:2]}/{content_hash}"
        stored = self._listing(target)
        wanted = {f.relpath: f.size for f in files}
        if stored != wanted:
            # Missing files: a crashed or concurrent publish; stray ones: tampering.
            stray = [f"{target}/{relpath}" for relpath in stored.keys() - wanted.keys()]
            if stray:
                self._fs.rm(stray)
            self._upload(files, target)
        shutil.rmtree(staging_dir, ignore_errors=True)
        return StoredArtifact(
            uri=self._uri(content_hash),
            content_hash=content_hash,
            size=sum(f.size for f in files),
        )

    def local_path(self, uri: str, content_hash: str) -> Path:
        cached = self.cache_dir / content_hash
        if cached.is_dir():
            if hash_folder(cached)[0] == content_hash:
                return cached
            shutil.rmtree(cached, ignore_errors=True)
        remote = self._path(uri)
        listing = self._listing(remote)
        if not listing:
            raise missing_error(uri, self.root)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        download = self.cache_dir / f".download-{uuid.uuid4().hex}"
        try:
            local = [download / relpath for relpath in listing]
            for path in local:
                path.parent.mkdir(parents=True, exist_ok=True)
            self._fs.get([f"{remote}/{relpath}" for relpath in listing], [str(p) for p in local])
            actual, _ = hash_folder(download)
            if actual != content_hash:
                raise corrupted_error(uri, expected=content_hash, actual=actual)
            try:
                os.rename(download, cached)
            except OSError:
                # A concurrent reader cached the same content first.
                if not cached.is_dir():
                    raise
        finally:
            shutil.rmtree(download, ignore_errors=True)
        return cached

    def exists(self, uri: str) -> bool:
        return bool(self._fs.exists(self._path(uri)))

    def delete(self, uri: str) -> None:
        path = self._path(uri)
        if not _HASH.fullmatch(path[-64:]) or uri.rstrip("/") != self._uri(path[-64:]):
            raise ArtifactError(
                f"{uri} is not an artifact folder of the artifact store {self.root}, so it "
                "will not be deleted. Pass a uri from list_uris() or from a recorded "
                "artifact version.",
                artifact_uri=uri,
            )
        if self._fs.exists(path):
            self._fs.rm(path, recursive=True)

    def list_uris(self) -> list[str]:
        uris: list[str] = []
        for prefix in self._ls(self._root_path):
            if _PREFIX.fullmatch(prefix.rsplit("/", 1)[-1]):
                for folder in self._ls(prefix):
                    name = folder.rsplit("/", 1)[-1]
                    if _HASH.fullmatch(name) and prefix.endswith("/" + name[:2]):
                        uris.append(self._uri(name))
        return sorted(uris)

    # -- garbage collection (no lock: see the module docstring) ---------------------------

    def stat_folder(self, uri: str) -> FolderStat:
        found = self._found(self._path(uri))
        if not found:
            raise missing_error(uri, self.root)
        return _stat(found.values())

    def list_leftovers(self) -> list[Leftover]:
        staging = f"{self._root_path}/{STAGING_DIR}"
        by_folder: dict[str, list[dict[str, Any]]] = {}
        for name, info in self._found(staging).items():
            folder = name[len(staging) + 1 :].split("/", 1)[0]
            by_folder.setdefault(folder, []).append(info)
        leftovers = []
        for folder, infos in sorted(by_folder.items()):
            stat = _stat(infos)
            leftovers.append(
                Leftover(f"{self.root}/{STAGING_DIR}/{folder}", stat.size, stat.modified)
            )
        return leftovers

    def delete_leftover(self, path: str) -> None:
        prefix = f"{self.root}/{STAGING_DIR}/"
        name = path.rstrip("/")[len(prefix) :]
        if not path.startswith(prefix) or not name or "/" in name:
            raise ArtifactError(
                f"{path} is not in the {STAGING_DIR} folder of the artifact store "
                f"{self.root}, so it will not be deleted. Pass a path from list_leftovers().",
                artifact_uri=path,
            )
        remote = f"{self._root_path}/{STAGING_DIR}/{name}"
        if self._fs.exists(remote):
            self._fs.rm(remote, recursive=True)

    def _found(self, folder: str) -> dict[str, dict[str, Any]]:
        """Name → info of every file under the remote ``folder``."""
        try:
            found = self._fs.find(folder, detail=True)
        except FileNotFoundError:
            return {}
        return {
            name: info
            for name, info in found.items()
            if info.get("type") != "directory" and name.startswith(folder + "/")
        }

    def _uri(self, content_hash: str) -> str:
        return f"{self.root}/{content_hash[:2]}/{content_hash}"

    def _path(self, uri: str) -> str:
        if not uri.startswith(self.root + "/"):
            raise ArtifactError(
                f"{uri} is not in the artifact store {self.root}. Open the store whose "
                "root it starts with, e.g. artifact_store_for('<that root>').",
                artifact_uri=uri,
            )
        return self._root_path + uri[len(self.root) :].rstrip("/")

    def _ls(self, path: str) -> list[str]:
        try:
            return [entry.rstrip("/") for entry in self._fs.ls(path, detail=False)]
        except FileNotFoundError:
            return []

    def _listing(self, folder: str) -> dict[str, int]:
        """Relative path → size of every file under the remote ``folder``."""
        start = len(folder) + 1
        return {name[start:]: int(info["size"]) for name, info in self._found(folder).items()}

    def _upload(self, files: list[FileEntry], target: str) -> None:
        staging = f"{self._root_path}/{STAGING_DIR}/{uuid.uuid4().hex}"
        fs = self._fs
        for folder in {os.path.dirname(f"{target}/{f.relpath}") for f in files}:
            fs.makedirs(folder, exist_ok=True)
        for folder in {os.path.dirname(f"{staging}/{f.relpath}") for f in files}:
            fs.makedirs(folder, exist_ok=True)
        try:
            fs.put([str(f.path) for f in files], [f"{staging}/{f.relpath}" for f in files])
            fs.copy(
                [f"{staging}/{f.relpath}" for f in files],
                [f"{target}/{f.relpath}" for f in files],
            )
        finally:
            if fs.exists(staging):
                fs.rm(staging, recursive=True)


def _stat(infos: Any) -> FolderStat:
    """Total size and newest modification time of files given by their fsspec infos."""
    infos = list(infos)
    times = [t for t in map(_modified_time, infos) if t is not None]
    return FolderStat(
        size=sum(int(info.get("size") or 0) for info in infos),
        modified=max(times) if len(times) == len(infos) and times else None,
    )


def _modified_time(info: dict[str, Any]) -> float | None:
    """The POSIX modification time in an fsspec ``info``, whatever the backend calls it."""
    for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
        value = info.get(key)
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
        if isinstance(value, datetime):
            if value.tzinfo is None:  # backends that give naive times give UTC
                value = value.replace(tzinfo=UTC)
            return value.timestamp()
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None
