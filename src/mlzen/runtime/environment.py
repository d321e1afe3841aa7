"""What a run records for reproducibility: code version and Python environment."""

from __future__ import annotations

import hashlib
import platform
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

# The most of ``git diff HEAD`` a run keeps; a bigger diff is cut here, with a note.
MAX_DIFF_BYTES = 1024 * 1024


def _git(root: Path, *args: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def _git_diff(root: Path) -> tuple[str | None, bool]:
    """``git diff HEAD`` of the working tree, at most ``MAX_DIFF_BYTES``, and whether it was cut.

    Reads only that much and stops git, so a huge diff costs no more than a big one.
    """
    limit = MAX_DIFF_BYTES
    # No colour, pager or external diff tool: the text must be a patch `git apply` reads.
    command = ["git", "--no-pager", "diff", "--no-color", "--no-ext-diff", "HEAD"]
    try:
        process = subprocess.Popen(
            command, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
    except OSError:
        return None, False
    assert process.stdout is not None
    with process:
        data = process.stdout.read(limit + 1)
        truncated = len(data) > limit
        if truncated:
            process.kill()
    if not truncated and process.returncode != 0:
        return None, False
    text = data[:limit].decode("utf-8", errors="replace")
    if truncated:
        text = text[: text.rfind("\n") + 1]  # whole lines only
        text += f"# mlzen: diff truncated at {limit} bytes; the full diff was larger.\n"
    return text, truncated


def code_version(project_root: Path, step_sources: list[str]) -> dict[str, Any]:
    """The project's git commit, dirty flag and (when dirty) diff, and the steps' source hash.

    Returns:
        ``{"git_commit", "dirty", "diff", "diff_truncated", "source_hash"}``; outside a git
        repository ``git_commit``, ``dirty`` and ``diff`` are ``None`` and git is not run.
        ``diff`` is ``git diff HEAD`` (tracked files), cut at ``MAX_DIFF_BYTES`` with a
        closing note when larger.
    """
    source_hash = hashlib.sha256("\n".join(sorted(step_sources)).encode()).hexdigest()
    version: dict[str, Any] = {
        "git_commit": None,
        "dirty": None,
        "diff": None,
        "diff_truncated": False,
        "source_hash": source_hash,
    }
    # Looking for .git first keeps runs outside a repository from starting git at all.
    if not any((folder / ".git").exists() for folder in (project_root, *project_root.parents)):
        return version
    commit = _git(project_root, "rev-parse", "HEAD")
    if not commit:
        return version
    status = _git(project_root, "status", "--porcelain", "--untracked-files=no")
    version.update(git_commit=commit, dirty=bool(status))
    if status:
        version["diff"], version["diff_truncated"] = _git_diff(project_root)
    return version


@lru_cache(maxsize=1)
def python_environment() -> dict[str, Any]:
    """Python version, platform and installed packages (computed once per process)."""
    from importlib import metadata

    packages = sorted(
        {
            f"{dist.metadata['Name']}=={dist.version}"
            for dist in metadata.distributions()
            if dist.metadata["Name"]
        }
    )
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "packages": packages,
    }
