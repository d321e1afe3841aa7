"""What a run records for reproducibility: git commit, dirty flag, diff, environment."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mlzen import Client, pipeline, step
from mlzen.runtime import environment
from mlzen.runtime.environment import MAX_DIFF_BYTES, code_version, python_environment


def git(root: Path, *args: str) -> str:
    result = subprocess.run(
        [
            "git",
            "-c",
            "user.name=mlzen tests",
            "-c",
            "user.email=tests@mlzen.invalid",
            "-c",
            "commit.gpgsign=false",
            *args,
        ],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip()


def init_repo(root: Path, files: dict[str, str]) -> str:
    """A real repository at ``root`` with ``files`` committed; returns the commit."""
    git(root, "init", "-q")
    for name, text in files.items():
        (root / name).write_text(text)
    git(root, "add", *files)
    git(root, "commit", "-q", "-m", "initial")
    return git(root, "rev-parse", "HEAD")


@step
def answer(value: int = 42) -> int:
    return value


@pipeline
def tiny(value: int = 42):
    answer(value=value)


def test_outside_a_repository_git_is_not_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if any((folder / ".git").exists() for folder in (tmp_path, *tmp_path.parents)):
        pytest.skip("the temporary folder is inside a git repository")

    def no_git(*args, **kwargs):
        raise AssertionError(f"git was started: {args}")

    monkeypatch.setattr(environment.subprocess, "run", no_git)
    monkeypatch.setattr(environment.subprocess, "Popen", no_git)
    version = code_version(tmp_path, ["def a(): pass"])
    assert version["git_commit"] is None
    assert version["dirty"] is None and version["diff"] is None
    assert version["diff_truncated"] is False
    assert version["source_hash"] == code_version(tmp_path, ["def a(): pass"])["source_hash"]
    assert version["source_hash"] != code_version(tmp_path, ["def b(): pass"])["source_hash"]


def test_clean_tree_records_the_commit_and_no_diff(tmp_path: Path) -> None:
    commit = init_repo(tmp_path, {"steps.py": "x = 1\n"})
    version = code_version(tmp_path, [])
    assert version["git_commit"] == commit
    assert version["dirty"] is False
    assert version["diff"] is None


def test_dirty_tree_records_the_diff_of_tracked_files(tmp_path: Path) -> None:
    commit = init_repo(tmp_path, {"steps.py": "x = 1\n", "other.py": "y = 2\n"})
    (tmp_path / "steps.py").write_text("x = 2\n")
    (tmp_path / "untracked.py").write_text("z = 3\n")
    version = code_version(tmp_path, [])
    assert version["git_commit"] == commit
    assert version["dirty"] is True
    diff = version["diff"]
    assert "diff --git a/steps.py b/steps.py" in diff
    assert "-x = 1\n+x = 2\n" in diff
    assert "other.py" not in diff and "untracked.py" not in diff
    assert version["diff_truncated"] is False
    # The recorded diff is a patch that restores the dirty tree from the commit.
    git(tmp_path, "stash", "-q")
    (tmp_path / "recorded.patch").write_text(diff)
    git(tmp_path, "apply", "recorded.patch")
    assert (tmp_path / "steps.py").read_text() == "x = 2\n"


def test_a_project_in_a_subfolder_of_the_repository_is_found(tmp_path: Path) -> None:
    commit = init_repo(tmp_path, {"README": "hello\n"})
    (tmp_path / "sub" / "folder").mkdir(parents=True)
    version = code_version(tmp_path / "sub" / "folder", [])
    assert version["git_commit"] == commit and version["dirty"] is False


def test_a_diff_over_the_cap_is_cut_with_a_note(tmp_path: Path) -> None:
    line = "0123456789" * 7 + "\n"
    count = MAX_DIFF_BYTES // len(line) + 1000
    init_repo(tmp_path, {"data.txt": line * count})
    (tmp_path / "data.txt").write_text(line.upper().replace("0", "a") * count)
    version = code_version(tmp_path, [])
    assert version["dirty"] is True and version["diff_truncated"] is True
    diff = version["diff"]
    body, _, note = diff.rstrip("\n").rpartition("\n")
    assert len(body.encode()) <= MAX_DIFF_BYTES
    assert note.startswith("# mlzen: diff truncated at") and str(MAX_DIFF_BYTES) in note
    assert body.startswith("diff --git a/data.txt b/data.txt")
    assert all(not row or row[0] in " +-@di" for row in body.splitlines())


def test_a_run_records_commit_dirty_flag_and_diff(project: Path) -> None:
    commit = init_repo(project, {"notes.txt": "first\n", ".gitignore": ".mlzen/\n"})
    clean = tiny()
    assert clean.code_version["git_commit"] == commit
    assert clean.code_version["dirty"] is False and clean.code_version["diff"] is None
    (project / "notes.txt").write_text("second\n")
    dirty = tiny()
    assert dirty.code_version["git_commit"] == commit
    assert dirty.code_version["dirty"] is True
    assert "-first\n+second\n" in dirty.code_version["diff"]
    assert Client().get_pipeline_run(dirty.id).code_version == dirty.code_version


def test_python_environment_lists_python_platform_and_packages() -> None:
    import platform
    import sys
    from importlib import metadata

    recorded = python_environment()
    assert recorded["python"] == sys.version.split()[0]
    assert recorded["implementation"] == platform.python_implementation()
    assert f"click=={metadata.version('click')}" in recorded["packages"]
    assert recorded["packages"] == sorted(recorded["packages"])
