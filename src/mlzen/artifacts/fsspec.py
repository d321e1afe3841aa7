"""The artifact store on any fsspec filesystem (S3, GCS, Azure, memory, ...).

Layout under the root::

    <hash[:2]>/<hash>/            the artifact's files, exactly what the materializer wrote
    <hash[:2]>/<hash>.complete    the completion marker: JSON listing of those files
    .mlzen-store*.json            whose store it is (see mlzen.artifacts.identity)
    .staging/<uuid>/              probes of check(), and uploads of older mlzen versions

Materializers write into a local temporary folder. Publishing hashes it, uploads the
files under their final keys, and then writes the completion marker, last. Object stores
write each object atomically but have no folder rename, so the marker is what makes a
publish atomic: an artifact whose marker is absent *is* absent. ``exists()``,
``local_path()`` and ``list_uris()`` look at markers only, so no reader ever sees a folder
that is still filling in, or one a crashed writer left half-done. ``local_path`` downloads
exactly the files the marker lists and verifies their content hash
(``ArtifactCorruptedError`` otherwise). The marker sits beside the folder rather than in
it, so that the folder holds only the artifact's files (it hashes to its own name) and a
materializer may name its files as it likes.

A publish of content that is already stored compares the folder with its own files,
reading back (and hashing) every stored file of the right size: if the marker is there
and every file is intact, it writes nothing (identical values share one copy);
otherwise it uploads what is missing, of the wrong size or of other content, removes
stray files and writes the marker, which completes an interrupted upload or repairs a
damaged folder. A damaged folder loses its marker first, so it is absent, never half
repaired, until the marker is written again.
Deleting removes the marker first, so a folder being deleted is absent at once. Folders
without a marker are listed by ``list_leftovers()`` for garbage collection.

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
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlzen.artifacts.hashing import FileEntry, combine, hash_file, hash_folder, list_files
from mlzen.artifacts.store import (
    STORE_FILE,
    ArtifactStore,
    FolderStat,
    Leftover,
    StoredArtifact,
    check_store_file,
    corrupted_error,
    missing_error,
    outside_error,
)
from mlzen.errors import ArtifactError, MlzenError

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

STAGING_DIR = ".staging"
MARKER_SUFFIX = ".complete"
MARKER_FORMAT = 1
_READ_CHUNK = 8 << 20
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

    def __getstate__(self) -> dict[str, Any]:
        # The connection is not sent to other processes (Ray tasks, workers): each
        # opens its own on first use.
        return {**self.__dict__, "_filesystem": None}

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

    def check(self) -> None:
        """Verify that the store can be written, read and deleted from, before a run.

        Writes, reads back and deletes a small object under ``.staging/``.

        Raises:
            ArtifactError: The store is unreachable or not writable; names the fix.
        """
        try:
            self._probe()
        except MlzenError:
            raise
        except Exception as exc:
            raise ArtifactError(
                f"The artifact store {self.root} cannot be used: {type(exc).__name__}: "
                f"{exc}. Check that it is reachable and that its credentials may read, "
                "write and delete there.",
                artifact_store=self.root,
            ) from exc

    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        folder = Path(tempfile.mkdtemp(prefix="mlzen-staging-"))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def publish(self, staging_dir: Path) -> StoredArtifact:
        files = list_files(Path(staging_dir))
        hashes = {f.relpath: hash_file(f.path, f.size) for f in files}
        content_hash = combine([(f.relpath, f.size, hashes[f.relpath]) for f in files])
        target = f"{self._root_path}/{content_hash[:2]}/{content_hash}"
        wanted = {f.relpath: f.size for f in files}
        marker = self._read_marker(target)
        stored = self._listing(target)
        # A stored file is reused only once its bytes are verified: one of the right size
        # may have been changed in place.
        todo = [
            f
            for f in files
            if stored.get(f.relpath) != f.size
            or not self._holds(f"{target}/{f.relpath}", hashes[f.relpath])
        ]
        if marker != wanted or todo or stored.keys() - wanted.keys():
            if marker is not None:
                # Damaged: absent from now until it is whole again.
                self._remove(target + MARKER_SUFFIX)
            self._complete(target, content_hash, files, todo, stored)
        shutil.rmtree(staging_dir, ignore_errors=True)
        return StoredArtifact(
            uri=self._uri(content_hash),
            content_hash=content_hash,
            size=sum(f.size for f in files),
            files=wanted,
        )

    def local_path(self, uri: str, content_hash: str) -> Path:
        # Checked first: the hash names a folder of the local cache, which may be deleted.
        if not _HASH.fullmatch(content_hash) or not self.contains(uri):
            raise outside_error(uri, self.root)
        uri = self._uri(content_hash)
        cached = self.cache_dir / content_hash
        if cached.is_dir():
            if hash_folder(cached)[0] == content_hash:
                return cached
            shutil.rmtree(cached, ignore_errors=True)
        remote = self._path(uri)
        listing = self._read_marker(remote)
        if listing is None:
            raise missing_error(uri, self.root)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        download = self.cache_dir / f".download-{uuid.uuid4().hex}"
        try:
            download.mkdir()
            local = [download / relpath for relpath in listing]
            for path in local:
                path.parent.mkdir(parents=True, exist_ok=True)
            if local:
                try:
                    self._fs.get(
                        [f"{remote}/{relpath}" for relpath in listing], [str(p) for p in local]
                    )
                except FileNotFoundError as exc:
                    if not self._absent(exc):
                        raise
                    # Deleted since its marker was read, or damaged: absent either way.
                    raise missing_error(uri, self.root) from exc
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
        return self.contains(uri) and self._read_marker(self._path(uri)) is not None

    def read_store_file(self, name: str) -> bytes | None:
        try:
            data = self._fs.cat_file(f"{self._root_path}/{check_store_file(name)}")
        except FileNotFoundError as exc:
            if not self._absent(exc):
                raise
            return None
        return bytes(data)

    def create_store_file(self, name: str, data: bytes) -> bytes | None:
        # Object stores have no create-if-absent for every backend: write, then read back
        # what is there (see mlzen.artifacts.identity).
        existing = self.read_store_file(name)
        if existing is not None:
            return existing
        self._make_folders({self._root_path})
        self._fs.pipe_file(f"{self._root_path}/{name}", data)
        return self.read_store_file(name)

    def list_store_files(self) -> list[str]:
        names = (path.rsplit("/", 1)[-1] for path in self._ls(self._root_path))
        return sorted(name for name in names if STORE_FILE.fullmatch(name))

    def has_files(self, uri: str, files: Mapping[str, int]) -> bool:
        path = self._path(uri)
        return self._read_marker(path) is not None and self._listing(path) == dict(files)

    def delete(self, uri: str) -> None:
        path = self._path(uri)
        if not _HASH.fullmatch(path[-64:]) or uri.rstrip("/") != self._uri(path[-64:]):
            raise ArtifactError(
                f"{uri} is not an artifact folder of the artifact store {self.root}, so it "
                "will not be deleted. Pass a uri from list_uris() or from a recorded "
                "artifact version.",
                artifact_uri=uri,
            )
        # The marker goes first: from then on every reader sees the artifact absent.
        self._remove(path + MARKER_SUFFIX)
        self._remove_folder(path)

    def list_uris(self) -> list[str]:
        uris: list[str] = []
        for _prefix, _folders, markers in self._prefixes():
            uris.extend(self._uri(name) for name in markers)
        return sorted(uris)

    # -- garbage collection (no lock: see the module docstring) ---------------------------

    def stat_folder(self, uri: str) -> FolderStat:
        path = self._path(uri)
        try:
            marker = self._fs.info(path + MARKER_SUFFIX)
        except FileNotFoundError as exc:
            if not self._absent(exc):
                raise
            raise missing_error(uri, self.root) from None
        return _stat([*self._found(path).values(), marker])

    def list_leftovers(self) -> list[Leftover]:
        """Folders of ``.staging/``, and artifact folders without a completion marker."""
        staging = f"{self._root_path}/{STAGING_DIR}"
        by_folder: dict[str, list[dict[str, Any]]] = {}
        for name, info in self._found(staging).items():
            folder = name[len(staging) + 1 :].split("/", 1)[0]
            by_folder.setdefault(f"{self.root}/{STAGING_DIR}/{folder}", []).append(info)
        for prefix, folders, markers in self._prefixes():
            for name in sorted(folders - markers):
                found = self._found(f"{prefix}/{name}")
                if found:
                    by_folder[self._uri(name)] = list(found.values())
        leftovers = []
        for path, infos in sorted(by_folder.items()):
            stat = _stat(infos)
            leftovers.append(Leftover(path, stat.size, stat.modified))
        return leftovers

    def delete_leftover(self, path: str) -> None:
        name = path.rstrip("/").rsplit("/", 1)[-1]
        if _HASH.fullmatch(name) and path.rstrip("/") == self._uri(name):
            remote = self._path(path)
            # Completed meanwhile: an artifact now, not a leftover.
            if self._read_marker(remote) is None:
                self._remove_folder(remote)
            return
        prefix = f"{self.root}/{STAGING_DIR}/"
        name = path.rstrip("/")[len(prefix) :]
        if not path.startswith(prefix) or not name or "/" in name:
            raise ArtifactError(
                f"{path} is not in the {STAGING_DIR} folder of the artifact store "
                f"{self.root} nor an unfinished artifact folder, so it will not be "
                "deleted. Pass a path from list_leftovers().",
                artifact_uri=path,
            )
        self._remove_folder(f"{self._root_path}/{STAGING_DIR}/{name}")

    # -- what backends may override -------------------------------------------------------

    def _absent(self, exc: FileNotFoundError) -> bool:
        """Whether ``exc`` means that the object is not there, rather than that the store
        itself is missing (which must not pass for an absent artifact)."""
        return True

    def _make_folders(self, folders: set[str]) -> None:
        """Create the remote folders that files are about to be written into."""
        for folder in sorted(folders):
            self._fs.makedirs(folder, exist_ok=True)

    def _put_options(self, files: list[FileEntry]) -> dict[str, Any]:
        """Extra keyword arguments of the filesystem's ``put`` for uploading ``files``."""
        return {}

    # -- helpers --------------------------------------------------------------------------

    def _complete(
        self,
        target: str,
        content_hash: str,
        files: list[FileEntry],
        todo: list[FileEntry],
        stored: dict[str, int],
    ) -> None:
        """Upload ``todo`` into ``target``, drop what it should not hold, then the marker."""
        fs = self._fs
        wanted = {f.relpath: f.size for f in files}
        # Stray files: tampering, or a damaged folder; a marker never lists them.
        stray = [f"{target}/{relpath}" for relpath in sorted(stored.keys() - wanted.keys())]
        if stray:
            fs.rm(stray)
        self._make_folders(
            {os.path.dirname(f"{target}/{f.relpath}") for f in todo} | {os.path.dirname(target)}
        )
        if todo:
            fs.put(
                [str(f.path) for f in todo],
                [f"{target}/{f.relpath}" for f in todo],
                **self._put_options(todo),
            )
        listing = {"format": MARKER_FORMAT, "content_hash": content_hash, "files": wanted}
        fs.pipe_file(target + MARKER_SUFFIX, json.dumps(listing, sort_keys=True).encode())

    def _holds(self, path: str, file_hash: str) -> bool:
        """Whether the remote file at ``path`` hashes to ``file_hash`` (read in chunks)."""
        import blake3

        hasher = blake3.blake3()
        try:
            with self._fs.open(path, "rb") as remote:
                while chunk := remote.read(_READ_CHUNK):
                    hasher.update(chunk)
        except FileNotFoundError as exc:
            if not self._absent(exc):
                raise
            return False
        return bool(hasher.hexdigest() == file_hash)

    def _read_marker(self, folder: str) -> dict[str, int] | None:
        """Relative path → size of the files of a published artifact; ``None`` if the
        remote ``folder`` has no (complete, readable) marker."""
        try:
            raw = self._fs.cat_file(folder + MARKER_SUFFIX)
        except FileNotFoundError as exc:
            if not self._absent(exc):
                raise
            return None
        try:
            files = json.loads(raw)["files"]
        except (ValueError, KeyError, TypeError):
            return None  # torn by a backend whose writes are not atomic: absent
        if not isinstance(files, dict) or not all(
            isinstance(k, str) and type(v) is int for k, v in files.items()
        ):
            return None
        return files

    def _prefixes(self) -> Iterator[tuple[str, set[str], set[str]]]:
        """For each ``<hash[:2]>`` folder: its remote path, the artifact folder names in
        it, and the names of the artifacts whose marker is in it."""
        for prefix in self._ls(self._root_path):
            short = prefix.rsplit("/", 1)[-1]
            if not _PREFIX.fullmatch(short):
                continue
            folders: set[str] = set()
            markers: set[str] = set()
            for entry in self._ls(prefix):
                name = entry.rsplit("/", 1)[-1]
                if name.endswith(MARKER_SUFFIX):
                    name = name.removesuffix(MARKER_SUFFIX)
                    found = markers
                else:
                    found = folders
                if _HASH.fullmatch(name) and name.startswith(short):
                    found.add(name)
            yield prefix, folders, markers

    def _remove(self, path: str) -> None:
        try:
            self._fs.rm_file(path)
        except FileNotFoundError as exc:
            if not self._absent(exc):
                raise

    def _remove_folder(self, folder: str) -> None:
        files = sorted(self._found(folder))
        if files:
            self._fs.rm(files)
        with contextlib.suppress(FileNotFoundError):
            if self._fs.isdir(folder):  # pseudo-folders of backends that keep them
                self._fs.rm(folder, recursive=True)

    def _probe(self) -> None:
        # In a folder of its own, like any staging leftover, should it outlive a crash.
        probe = f"{self._root_path}/{STAGING_DIR}/check-{uuid.uuid4().hex}/probe"
        payload = b"mlzen artifact store check"
        fs = self._fs
        self._make_folders({os.path.dirname(probe)})
        fs.pipe_file(probe, payload)
        try:
            if fs.cat_file(probe) != payload:
                raise ArtifactError(
                    f"The artifact store {self.root} returned other bytes than were just "
                    "written to it. Check its endpoint and its consistency settings.",
                    artifact_store=self.root,
                )
        finally:
            self._remove_folder(os.path.dirname(probe))

    def _found(self, folder: str) -> dict[str, dict[str, Any]]:
        """Name → info of every file under the remote ``folder``."""
        try:
            found = self._fs.find(folder, detail=True)
        except FileNotFoundError as exc:
            if not self._absent(exc):
                raise
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
        except FileNotFoundError as exc:
            if not self._absent(exc):
                raise
            return []

    def _listing(self, folder: str) -> dict[str, int]:
        """Relative path → size of every file under the remote ``folder``."""
        start = len(folder) + 1
        return {name[start:]: int(info["size"]) for name, info in self._found(folder).items()}


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
