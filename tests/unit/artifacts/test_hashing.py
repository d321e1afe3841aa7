from __future__ import annotations

from pathlib import Path

import blake3

from mlzen.artifacts.hashing import hash_folder, list_files


def write(folder: Path, files: dict[str, bytes]) -> None:
    for relpath, data in files.items():
        path = folder / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def test_content_hash_follows_the_documented_formula(tmp_path: Path) -> None:
    big = bytes(range(256)) * 20_000  # above the memory-map threshold
    files = {"b.txt": b"hello", "a/nested.bin": big, "empty": b""}
    write(tmp_path, files)
    lines = "".join(
        f"{relpath}\0{len(data)}\0{blake3.blake3(data).hexdigest()}\n"
        for relpath, data in sorted(files.items())
    )

    content_hash, size = hash_folder(tmp_path)

    assert content_hash == blake3.blake3(lines.encode()).hexdigest()
    assert len(content_hash) == 64
    assert size == sum(len(data) for data in files.values())


def test_hash_depends_on_names_and_bytes_not_on_location(tmp_path: Path) -> None:
    write(tmp_path / "one", {"x": b"1"})
    write(tmp_path / "two", {"x": b"1"})
    write(tmp_path / "renamed", {"y": b"1"})
    write(tmp_path / "changed", {"x": b"2"})

    one, two, renamed, changed = (
        hash_folder(tmp_path / name)[0] for name in ("one", "two", "renamed", "changed")
    )

    assert one == two
    assert len({one, renamed, changed}) == 3


def test_list_files_uses_forward_slashes_sorted(tmp_path: Path) -> None:
    write(tmp_path, {"z": b"", "a/b/c": b"12"})

    assert [(f.relpath, f.size) for f in list_files(tmp_path)] == [("a/b/c", 2), ("z", 0)]
