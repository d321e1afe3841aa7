"""What a run records for reproducibility: code version and Python environment."""

from __future__ import annotations

import hashlib
import platform
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any


def _git(root: Path, *args: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def code_version(project_root: Path, step_sources: list[str]) -> dict[str, Any]:
    """The git commit and dirty flag of the project, else a hash of the steps' sources."""
    source_hash = hashlib.sha256("\n".join(sorted(step_sources)).encode()).hexdigest()
    if any((folder / ".git").exists() for folder in (project_root, *project_root.parents)):
        commit = _git(project_root, "rev-parse", "HEAD")
        if commit:
            status = _git(project_root, "status", "--porcelain", "--untracked-files=no")
            return {"git_commit": commit, "dirty": bool(status), "source_hash": source_hash}
    return {"git_commit": None, "dirty": None, "source_hash": source_hash}


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
