"""The artifact store on a local (or mounted) filesystem.

Layout under the root::

    .lock                     the garbage-collection lock (see below)
    .mlzen-store*.json        whose store it is (see mlzen.artifacts.identity)
    .staging/<uuid>/          folders being written; never read
    .trash/<uuid>/            folders being deleted; never read
    <hash[:2]>/<hash>/        published artifacts

Staging lives under the root, on the same filesystem as the published folders, so
publishing is a single ``os.rename`` of a complete folder: a reader (or a crashed
writer) never leaves or sees a half-written artifact under its final name. Files are
not fsynced; should the machine lose power right after a publish, the content hash that
``local_path`` checks on every read reports the damaged artifact instead of loading it.

Publishing content that is already stored hashes the stored folder first. An intact one
is reused; a damaged one (a file changed, added or deleted) is swapped for the staged
copy in one ``renameat2(RENAME_EXCHANGE)`` on Linux, so the final name always holds a
whole folder; elsewhere, or on a filesystem without it, the damaged folder is renamed
away and the staged one renamed in (a reader in between finds the artifact absent, never
half-written). Rerunning a step with caching off therefore repairs its artifact.

``publishing()`` and ``collecting()`` are ``flock`` locks on ``<root>/.lock``, shared and
exclusive, taken on a fresh file descriptor each time, so they exclude each other across
processes and across threads of one process. They work wherever ``flock`` does: local
filesystems, and NFS on Linux (where the kernel maps them to NFS byte-range locks).
Linux grants a shared lock while an exclusive one waits, so a collector waits for a
moment when no step is saving outputs; steps hold the lock only while they save and
record them, not while they run.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from stat import S_ISDIR, S_ISREG
from typing import TYPE_CHECKING, Any

from mlzen.artifacts.hashing import combine, hash_file, hash_folder, list_files
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
from mlzen.errors import ArtifactError
from mlzen.flavors import Flavor, deferred_config

if TYPE_CHECKING:
    from pydantic import BaseModel

LOCK_FILE = ".lock"
STAGING_DIR = ".staging"
TRASH_DIR = ".trash"
_HASH = re.compile(r"[0-9a-f]{64}")
_PREFIX = re.compile(r"[0-9a-f]{2}")


class LocalArtifactStore(ArtifactStore):
    """Artifacts as folders under a local root, published by atomic rename.

    Args:
        root: The folder holding the artifacts; created on the first write.
    """

    locking = True

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.path.abspath(os.path.expanduser(os.fspath(root)))
        self._root = Path(self.root)
        self._staging_root = self._root / STAGING_DIR
        self._lock_path = os.path.join(self.root, LOCK_FILE)

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
        files = list_files(staging_dir)
        content_hash = combine([(f.relpath, f.size, hash_file(f.path, f.size)) for f in files])
        target = self._folder_for(content_hash)
        if not self._place(staging_dir, target) and not _intact(target, content_hash):
            self._replace(target, staging_dir)
        shutil.rmtree(staging_dir, ignore_errors=True)
        return StoredArtifact(
            uri=str(target),
            content_hash=content_hash,
            size=sum(f.size for f in files),
            files={f.relpath: f.size for f in files},
        )

    def _place(self, staging_dir: Path, target: Path) -> bool:
        """Rename ``staging_dir`` to ``target`` unless something is there already;
        whether it was renamed."""
        if os.path.lexists(target):
            return False
        target.parent.mkdir(exist_ok=True)
        try:
            os.rename(staging_dir, target)
        except OSError:
            # Another writer published the same content between the check and the
            # rename; its folder is verified like any other found there.
            if not os.path.lexists(target):
                raise
            return False
        return True

    def _replace(self, damaged: Path, staging_dir: Path) -> None:
        """Put the complete ``staging_dir`` where the ``damaged`` copy is; the damaged
        copy ends up at ``staging_dir``'s path (and is removed with it)."""
        if _exchange(staging_dir, damaged):
            return
        trash = self._root / TRASH_DIR / uuid.uuid4().hex
        trash.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):  # another writer moved it first
            os.rename(damaged, trash)
        try:
            os.rename(staging_dir, damaged)
        except OSError:
            if not os.path.lexists(damaged):  # a concurrent repair got there first
                raise
        shutil.rmtree(trash, ignore_errors=True)

    def local_path(self, uri: str, content_hash: str) -> Path:
        if not _HASH.fullmatch(content_hash) or not self.contains(uri):
            raise outside_error(uri, self.root)
        path = self._folder_for(content_hash)
        if not path.is_dir():
            raise missing_error(uri, self.root)
        self._check_contained(path, uri)
        actual, _ = hash_folder(path)
        if actual != content_hash:
            raise corrupted_error(uri, expected=content_hash, actual=actual)
        return path

    def exists(self, uri: str) -> bool:
        return self.contains(uri) and Path(uri).is_dir()

    def folder_uri(self, content_hash: str) -> str:
        return str(self._folder_for(content_hash))

    def contains(self, uri: str) -> bool:
        name = os.path.basename(uri.rstrip("/"))
        return _HASH.fullmatch(name) is not None and os.path.abspath(uri) == self.folder_uri(name)

    def read_store_file(self, name: str) -> bytes | None:
        try:
            return (self._root / check_store_file(name)).read_bytes()
        except FileNotFoundError:
            return None

    def create_store_file(self, name: str, data: bytes) -> bytes | None:
        target = self._root / check_store_file(name)
        self._root.mkdir(parents=True, exist_ok=True)
        draft = self._root / f".mlzen-draft-{uuid.uuid4().hex}"
        draft.write_bytes(data)
        try:
            # A hard link fails if the file exists: of two first writers, one wins.
            os.link(draft, target)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
        return target.read_bytes()

    def list_store_files(self) -> list[str]:
        try:
            names = [entry.name for entry in os.scandir(self._root)]
        except FileNotFoundError:
            return []
        return sorted(name for name in names if STORE_FILE.fullmatch(name))

    def _check_contained(self, folder: Path, uri: str) -> None:
        """Refuse a folder that is, or holds, a link leading out of it or of the store."""
        real_root = os.path.realpath(self._root)
        real_folder = os.path.realpath(folder)
        inside = real_folder.startswith(real_root + os.sep)
        for directory, folders, files in os.walk(folder) if inside else ():
            for name in folders + files:
                path = os.path.join(directory, name)
                if os.path.islink(path) and not os.path.realpath(path).startswith(
                    real_folder + os.sep
                ):
                    inside = False
        if not inside:
            raise outside_error(uri, self.root)

    def has_files(self, uri: str, files: Mapping[str, int]) -> bool:
        path = Path(uri)
        if not path.is_dir():
            return False
        try:
            found = {f.relpath: f.size for f in list_files(path)}
        except OSError:  # a file vanished while listing: not intact either
            return False
        return found == dict(files)

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

    # -- garbage collection -------------------------------------------------------------

    @contextlib.contextmanager
    def publishing(self) -> Iterator[None]:
        descriptor = self._open_lock()
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH)
            yield
        finally:
            os.close(descriptor)  # closing the descriptor releases the lock

    @contextlib.contextmanager
    def collecting(self, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        descriptor = self._open_lock()
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if on_wait is not None:
                    on_wait()
                fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)

    def _open_lock(self) -> int:
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
        try:
            return os.open(self._lock_path, flags, 0o666)
        except FileNotFoundError:
            self._root.mkdir(parents=True, exist_ok=True)
            return os.open(self._lock_path, flags, 0o666)
        except PermissionError:
            # A read-only store (flock needs no write access); it cannot be published to.
            return os.open(self._lock_path, os.O_RDONLY | os.O_CLOEXEC)

    def stat_folder(self, uri: str) -> FolderStat:
        path = Path(uri)
        if not path.is_dir():
            raise missing_error(uri, self.root)
        return _stat_tree(path)

    def list_leftovers(self) -> list[Leftover]:
        leftovers: list[Leftover] = []
        for name in (STAGING_DIR, TRASH_DIR):
            try:
                entries = list(os.scandir(self._root / name))
            except FileNotFoundError:
                continue
            for entry in entries:
                try:
                    found = _stat_tree(Path(entry.path))
                except FileNotFoundError:  # finished or removed meanwhile
                    continue
                leftovers.append(Leftover(entry.path, found.size, found.modified))
        return sorted(leftovers, key=lambda leftover: leftover.path)

    def delete_leftover(self, path: str) -> None:
        folder = Path(os.path.abspath(path))
        if folder.parent not in (self._staging_root, self._root / TRASH_DIR):
            raise ArtifactError(
                f"{path} is not in the {STAGING_DIR} or {TRASH_DIR} folder of the artifact "
                f"store {self.root}, so it will not be deleted. Pass a path from "
                "list_leftovers().",
                artifact_uri=path,
            )
        if folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                folder.unlink()


def _intact(folder: Path, content_hash: str) -> bool:
    """Whether ``folder`` is a folder whose files hash to ``content_hash``."""
    if folder.is_symlink() or not folder.is_dir():
        return False
    try:
        return hash_folder(folder)[0] == content_hash
    except OSError:  # a file vanished while hashing: a concurrent repair, or damage
        return False


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2`` with ``RENAME_EXCHANGE``).

    Returns:
        Whether they were swapped; ``False`` where the platform or the filesystem
        cannot, for the caller to fall back on two renames.
    """
    if sys.platform != "linux":
        return False
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:  # a C library older than glibc 2.28
        return False
    path, at = ctypes.c_char_p, ctypes.c_int
    renameat2.argtypes = [at, path, at, path, ctypes.c_uint]
    old, new = os.fsencode(first), os.fsencode(second)
    if renameat2(_AT_FDCWD, old, _AT_FDCWD, new, _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOENT):
        return False
    raise OSError(code, os.strerror(code), str(second))


def _stat_tree(path: Path) -> FolderStat:
    """Total file bytes under ``path`` and the newest change time of it or anything in it.

    A folder's ctime changes when it is renamed into place, so a freshly published
    folder counts as new however old its files are.
    """
    top = os.lstat(path)
    size, newest = 0, max(top.st_mtime, top.st_ctime)
    if not S_ISDIR(top.st_mode):
        return FolderStat(top.st_size, newest)
    for directory, folders, files in os.walk(path):
        for name in folders + files:
            try:
                info = os.lstat(os.path.join(directory, name))
            except FileNotFoundError:
                continue
            newest = max(newest, info.st_mtime, info.st_ctime)
            if S_ISREG(info.st_mode):
                size += info.st_size
    return FolderStat(size, newest)


# -- the flavor ---------------------------------------------------------------------------


def _config_class() -> type[BaseModel]:
    from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

    class LocalArtifactStoreConfig(BaseModel):
        """``path``: the folder; a relative one is relative to the project root."""

        model_config = ConfigDict(extra="forbid")

        path: str

        @field_validator("path")
        @classmethod
        def _local_folder(cls, value: str, info: ValidationInfo) -> str:
            value = value.removeprefix("file://")
            if not value.strip():
                raise ValueError("it must not be empty")
            if "://" in value:
                raise ValueError(
                    "it must be a local folder, not a URL; use the flavor of that storage "
                    "(e.g. s3) for a URL"
                )
            path = os.path.expanduser(value)
            root = (info.context or {}).get("project_root")
            if not os.path.isabs(path) and root:
                path = os.path.join(root, path)
            return os.path.abspath(path)

    return LocalArtifactStoreConfig


class LocalArtifactStoreFlavor(Flavor):
    """``artifact_store.local``: a :class:`LocalArtifactStore` in the folder ``path``."""

    kind = "artifact_store"
    name = "local"
    config_class = deferred_config(_config_class)

    def build(self, config: Any) -> LocalArtifactStore:
        return LocalArtifactStore(config.path)
