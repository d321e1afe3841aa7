"""Serving stored artifact files without ever reading outside the artifact store.

A version's folder is derived from the server's artifact store and the version's content
hash, once the version is known to be stored there (``mlzen.artifacts.identity``); the
URI it recorded is never opened. Every path is then resolved (symlinks followed) and
must lie inside the artifact folder, which itself must lie inside the store's root (or
its local download cache). ``..`` parts, absolute paths and links that point elsewhere
are refused, whatever the requested path says, and refusals name no server path.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from mlzen.artifacts.store import ArtifactStore
from mlzen.artifacts.visualization import visualization_path
from mlzen.client import ArtifactVersion
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


def _outside(label: str) -> ArtifactError:
    return ArtifactError(
        f"The files of artifact {label} lie outside the artifact store, so they are not "
        "served. Serve the server over the artifact store that holds them (mlzen server "
        "up --artifact-root ...).",
        artifact_name=label,
    )


def artifact_folder(store: ArtifactStore, version: ArtifactVersion) -> Path:
    """The local, hash-verified folder of an artifact version, inside ``store``.

    Raises:
        ForeignArtifactError: The version is recorded in another artifact store.
        ArtifactError: Its folder (links resolved) is not inside the store.
    """
    folder = version.local_path().resolve()
    if not any(folder.is_relative_to(root) for root in _allowed_roots(store)):
        raise _outside(f"{version.name}:{version.version}")
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


def visualization_file(store: ArtifactStore, version: ArtifactVersion, uri: str) -> Path:
    """The local file of a visualization of ``version`` recorded at ``uri`` (folder URI +
    ``/`` + file name), checked to lie inside its hash-verified folder inside the store."""
    label = f"{version.name}:{version.version}"
    path = visualization_path(
        store, uri, artifact_store_id=version.artifact_store_id, artifact=label
    ).resolve()
    folder = path.parent
    if not any(folder.is_relative_to(root) for root in _allowed_roots(store)):
        raise _outside(label)
    return contained_file(folder, path.name, uri=label)
