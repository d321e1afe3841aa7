"""Serving stored artifact files without ever reading outside the artifact store.

Every path is resolved (symlinks followed) and must lie inside the artifact folder,
which itself must lie inside the store's root (or its local download cache). ``..``
parts, absolute paths and links that point elsewhere are refused, whatever the
recorded URI or the requested path says.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from mlzen.artifacts.store import ArtifactStore
from mlzen.errors import ArtifactError, NotFoundError

MAX_LISTED_FILES = 10_000


def _allowed_roots(store: ArtifactStore) -> list[Path]:
    roots = []
    root = str(store.root)
    if "://" not in root or root.startswith("file://"):
        roots.append(Path(root.removeprefix("file://")).resolve())
    cache = getattr(store, "cache_dir", None)
    if cache is not None:
        roots.append(Path(cache).resolve())
    return roots


def _outside(uri: str) -> ArtifactError:
    return ArtifactError(
        f"The artifact at {uri} lies outside the artifact store, so it is not served. "
        "Check the store's recorded URIs, or serve the server over the right artifact "
        "store (mlzen server up --artifact-root ...).",
        artifact_uri=uri,
    )


def artifact_folder(store: ArtifactStore, uri: str, content_hash: str) -> Path:
    """The local, hash-verified folder of an artifact version, inside the store."""
    folder = store.local_path(uri, content_hash).resolve()
    if not any(folder.is_relative_to(root) for root in _allowed_roots(store)):
        raise _outside(uri)
    return folder


def contained_file(folder: Path, relative: str, *, uri: str) -> Path:
    """``folder / relative`` if it is a regular file inside ``folder``.

    Raises:
        NotFoundError: ``relative`` is unsafe (absolute, ``..``, a link out) or missing.
    """
    parts = PurePosixPath(relative).parts
    missing = NotFoundError(
        f"The artifact at {uri} has no file '{relative}'. List its files first.",
        artifact_uri=uri,
        path=relative,
    )
    if not parts or relative.startswith(("/", "\\")) or any(p in ("..", "") for p in parts):
        raise missing
    if any(os.path.isabs(p) or "\\" in p or "\x00" in p for p in parts):
        raise missing
    try:
        target = (folder / Path(*parts)).resolve(strict=True)
    except (OSError, RuntimeError):
        raise missing from None
    if not target.is_relative_to(folder) or not target.is_file():
        raise missing
    return target


def list_files(folder: Path) -> list[tuple[str, int]]:
    """``(relative path, size)`` of each regular file inside ``folder``, sorted.

    Links are followed only when they stay inside the folder.
    """
    files: list[tuple[str, int]] = []
    for directory, _dirs, names in os.walk(folder):
        for name in names:
            path = Path(directory) / name
            try:
                resolved = path.resolve(strict=True)
            except (OSError, RuntimeError):
                continue
            if resolved.is_relative_to(folder) and resolved.is_file():
                files.append((path.relative_to(folder).as_posix(), resolved.stat().st_size))
            if len(files) >= MAX_LISTED_FILES:
                return sorted(files)
    return sorted(files)


def visualization_file(store: ArtifactStore, uri: str) -> Path:
    """The local file of the visualization at ``uri`` (folder URI + ``/`` + file name),
    checked to lie inside its hash-verified folder inside the store."""
    folder_uri, _, name = uri.rstrip("/").rpartition("/")
    content_hash = folder_uri.rstrip("/").rpartition("/")[2]
    if not folder_uri or not name:
        raise _outside(uri)
    folder = artifact_folder(store, folder_uri, content_hash)
    return contained_file(folder, name, uri=uri)
