"""Content hashes of artifact folders.

The content hash of a folder is the BLAKE3 hex digest of one line per file, sorted by
path::

    f"{relpath}\\0{size}\\0{blake3_hex_of_the_file}\\n"

``relpath`` uses ``/`` whatever the platform, so the same files hash the same everywhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# Below this size reading the file beats setting up a memory map.
_MMAP_THRESHOLD = 1 << 20
# Above this size hashing on several threads pays for starting them.
_THREADS_THRESHOLD = 16 << 20


@dataclass(frozen=True)
class FileEntry:
    """One file of an artifact folder."""

    relpath: str
    path: Path
    size: int


def list_files(folder: Path) -> list[FileEntry]:
    """Every file under ``folder``, sorted by relative path."""
    entries: list[FileEntry] = []
    for directory, _, names in os.walk(folder):
        for name in names:
            path = Path(directory, name)
            relpath = path.relative_to(folder).as_posix()
            entries.append(FileEntry(relpath, path, path.stat().st_size))
    entries.sort(key=lambda entry: entry.relpath)
    return entries


def hash_file(path: Path, size: int) -> str:
    """BLAKE3 hex digest of one file, read once."""
    import blake3

    if size < _MMAP_THRESHOLD:
        return blake3.blake3(path.read_bytes()).hexdigest()
    threads = blake3.blake3.AUTO if size >= _THREADS_THRESHOLD else 1
    hasher = blake3.blake3(max_threads=threads)
    hasher.update_mmap(path)
    return hasher.hexdigest()


def combine(entries: list[tuple[str, int, str]]) -> str:
    """The content hash of a folder given ``(relpath, size, file_hash)`` per file."""
    import blake3

    hasher = blake3.blake3()
    for relpath, size, file_hash in sorted(entries):
        hasher.update(f"{relpath}\0{size}\0{file_hash}\n".encode())
    return hasher.hexdigest()


def hash_folder(folder: Path) -> tuple[str, int]:
    """The content hash and total size in bytes of every file under ``folder``."""
    files = list_files(folder)
    content_hash = combine([(f.relpath, f.size, hash_file(f.path, f.size)) for f in files])
    return content_hash, sum(f.size for f in files)
