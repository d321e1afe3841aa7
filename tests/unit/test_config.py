"""``Settings``: defaults, environment, project file, and project root discovery."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from mlzen.config import (
    EXECUTORS,
    PROJECT_DIR_NAME,
    Settings,
    find_project_root,
    load_settings,
)
from mlzen.errors import ConfigError


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder with ``.mlzen/``, a clean environment and that folder as cwd."""
    for name in list(os.environ):
        if name.startswith("MLZEN_"):
            monkeypatch.delenv(name)
    folder = tmp_path / "proj"
    (folder / PROJECT_DIR_NAME).mkdir(parents=True)
    monkeypatch.chdir(folder)
    return folder.resolve()


def write_project_file(root: Path, text: str) -> Path:
    path = root / PROJECT_DIR_NAME / "config.yaml"
    path.write_text(text)
    return path


# --- defaults -----------------------------------------------------------------------


def test_defaults(root: Path) -> None:
    settings = load_settings()

    assert settings.project_root == root
    assert settings.project_dir == root / ".mlzen"
    assert settings.store_url == f"sqlite:///{root / '.mlzen' / 'mlzen.db'}"
    assert settings.artifact_root == str(root / ".mlzen" / "artifacts")
    assert settings.heartbeat_interval == 5.0
    assert settings.lease_seconds == 60.0
    assert settings.max_workers == 0
    assert settings.executor == "threads"
    assert settings.max_request_bytes == 32 * 1024 * 1024


def test_max_request_bytes_is_a_positive_integer(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLZEN_MAX_REQUEST_BYTES", "1048576")
    assert load_settings().max_request_bytes == 1048576
    for bad in ("0", "-1", "1.5", "lots"):
        monkeypatch.setenv("MLZEN_MAX_REQUEST_BYTES", bad)
        with pytest.raises(ConfigError) as info:
            load_settings()
        assert info.value.setting == "max_request_bytes"
        assert "MLZEN_MAX_REQUEST_BYTES" in info.value.message


def test_settings_are_frozen(root: Path) -> None:
    settings = load_settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.executor = "processes"  # type: ignore[misc]


def test_executors() -> None:
    assert EXECUTORS == ("threads", "processes")


# --- environment --------------------------------------------------------------------


def test_environment_overrides_every_setting(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLZEN_STORE_URL", "postgresql://db/mlzen")
    monkeypatch.setenv("MLZEN_ARTIFACT_ROOT", "s3://bucket/artifacts")
    monkeypatch.setenv("MLZEN_HEARTBEAT_INTERVAL", "0.5")
    monkeypatch.setenv("MLZEN_LEASE_SECONDS", "10")
    monkeypatch.setenv("MLZEN_MAX_WORKERS", "4")
    monkeypatch.setenv("MLZEN_EXECUTOR", "processes")

    settings = load_settings()

    assert settings.store_url == "postgresql://db/mlzen"
    assert settings.artifact_root == "s3://bucket/artifacts"
    assert settings.heartbeat_interval == 0.5
    assert settings.lease_seconds == 10.0
    assert isinstance(settings.lease_seconds, float)
    assert settings.max_workers == 4
    assert isinstance(settings.max_workers, int)
    assert settings.executor == "processes"


def test_project_root_from_the_environment(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.setenv("MLZEN_PROJECT_ROOT", str(other))

    settings = load_settings()

    assert settings.project_root == other.resolve()
    assert settings.store_url == f"sqlite:///{other.resolve() / '.mlzen' / 'mlzen.db'}"


def test_keyword_overrides_win_over_the_environment(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLZEN_MAX_WORKERS", "4")
    monkeypatch.setenv("MLZEN_PROJECT_ROOT", str(tmp_path / "env-root"))

    settings = load_settings(max_workers=2, project_root=root)

    assert settings.max_workers == 2
    assert settings.project_root == root


def test_unknown_keyword_override_is_an_error(root: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(max_worker=2)
    assert "'max_worker'" in str(info.value)
    assert info.value.setting == "max_worker"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MLZEN_MAX_WORKERS", "many"),
        ("MLZEN_MAX_WORKERS", "2.5"),
        ("MLZEN_HEARTBEAT_INTERVAL", "soon"),
        ("MLZEN_LEASE_SECONDS", "nan"),
    ],
)
def test_bad_type_in_the_environment_names_the_setting(
    root: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    setting = variable.removeprefix("MLZEN_").lower()

    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert f"'{setting}'" in message
    assert variable in message  # says where to fix it
    assert value in message
    assert info.value.setting == setting


# --- project file -------------------------------------------------------------------


def test_project_file_sets_values(root: Path) -> None:
    write_project_file(
        root,
        "store_url: sqlite:////tmp/x.db\nmax_workers: 3\nexecutor: processes\n"
        "heartbeat_interval: 2\nlease_seconds: 30.5\n",
    )
    settings = load_settings()

    assert settings.store_url == "sqlite:////tmp/x.db"
    assert settings.max_workers == 3
    assert settings.executor == "processes"
    assert settings.heartbeat_interval == 2.0
    assert settings.lease_seconds == 30.5


def test_environment_wins_over_the_project_file(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_project_file(root, "max_workers: 3\nexecutor: processes\n")
    monkeypatch.setenv("MLZEN_MAX_WORKERS", "8")

    settings = load_settings()

    assert settings.max_workers == 8
    assert settings.executor == "processes"


def test_empty_project_file_is_fine(root: Path) -> None:
    write_project_file(root, "")
    assert load_settings().executor == "threads"


def test_unknown_setting_in_the_file_names_it(root: Path) -> None:
    path = write_project_file(root, "max_workers: 2\nexcutor: threads\n")

    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert "'excutor'" in message
    assert str(path) in message
    assert "executor" in message  # lists the known settings
    assert info.value.setting == "excutor"


def test_project_root_cannot_be_set_in_the_file(root: Path) -> None:
    write_project_file(root, "project_root: /elsewhere\n")
    with pytest.raises(ConfigError, match="'project_root'"):
        load_settings()


@pytest.mark.parametrize(
    ("text", "setting"),
    [
        ("max_workers: lots\n", "max_workers"),
        ("max_workers: 2.5\n", "max_workers"),
        ("max_workers: true\n", "max_workers"),
        ("lease_seconds: [1]\n", "lease_seconds"),
        ("heartbeat_interval: false\n", "heartbeat_interval"),
        ("executor: [threads]\n", "executor"),
        ("store_url: 5\n", "store_url"),
    ],
)
def test_bad_type_in_the_file_names_the_setting(root: Path, text: str, setting: str) -> None:
    write_project_file(root, text)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert f"'{setting}'" in str(info.value)
    assert info.value.setting == setting


def test_whole_number_float_is_accepted_for_an_int_setting(root: Path) -> None:
    write_project_file(root, "max_workers: 2.0\n")
    assert load_settings().max_workers == 2


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n"])
def test_project_file_must_be_a_mapping(root: Path, text: str) -> None:
    path = write_project_file(root, text)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(path) in str(info.value)
    assert "mapping" in str(info.value)


def test_invalid_yaml_in_the_project_file_is_a_config_error(root: Path) -> None:
    path = write_project_file(root, "max_workers: [1\n")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(path) in str(info.value)
    assert "YAML" in str(info.value)


# --- validation ---------------------------------------------------------------------


@pytest.mark.parametrize("executor", EXECUTORS)
def test_known_executors_are_accepted(root: Path, executor: str) -> None:
    assert load_settings(executor=executor).executor == executor


@pytest.mark.parametrize("executor", ["ray", "Threads", ""])
def test_unknown_executor_is_an_error(
    root: Path, monkeypatch: pytest.MonkeyPatch, executor: str
) -> None:
    monkeypatch.setenv("MLZEN_EXECUTOR", executor)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert "'executor'" in message
    assert "threads" in message and "processes" in message
    assert info.value.setting == "executor"


def test_unknown_executor_in_the_file_is_an_error(root: Path) -> None:
    write_project_file(root, "executor: kubernetes\n")
    with pytest.raises(ConfigError, match="kubernetes"):
        load_settings()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MLZEN_MAX_WORKERS", "-1"),
        ("MLZEN_HEARTBEAT_INTERVAL", "0"),
        ("MLZEN_HEARTBEAT_INTERVAL", "-2"),
        ("MLZEN_LEASE_SECONDS", "0"),
    ],
)
def test_out_of_range_numbers_are_errors(
    root: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    setting = variable.removeprefix("MLZEN_").lower()
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert f"'{setting}'" in str(info.value)
    assert info.value.setting == setting


# --- project root discovery ---------------------------------------------------------


def test_project_root_is_found_in_a_parent_folder(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deep = root / "src" / "pkg" / "sub"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)

    assert find_project_root() == root
    settings = load_settings()
    assert settings.project_root == root
    assert settings.store_url == f"sqlite:///{root / '.mlzen' / 'mlzen.db'}"


def test_find_project_root_from_a_start_folder(root: Path) -> None:
    deep = root / "a" / "b"
    deep.mkdir(parents=True)
    assert find_project_root(deep) == root


def test_nearest_project_wins(root: Path) -> None:
    inner = root / "nested"
    (inner / PROJECT_DIR_NAME).mkdir(parents=True)
    (inner / "deeper").mkdir()
    assert find_project_root(inner / "deeper") == inner


def test_without_a_project_folder_the_start_folder_is_the_root(tmp_path: Path) -> None:
    lonely = tmp_path / "lonely" / "x"
    lonely.mkdir(parents=True)
    found = find_project_root(lonely)
    # Nothing between lonely and tmp_path holds .mlzen/; above tmp_path we cannot know.
    if not any((p / PROJECT_DIR_NAME).is_dir() for p in lonely.resolve().parents):
        assert found == lonely.resolve()


def test_a_file_named_mlzen_is_not_a_project(tmp_path: Path) -> None:
    folder = tmp_path / "files" / "inner"
    folder.mkdir(parents=True)
    (tmp_path / "files" / PROJECT_DIR_NAME).write_text("not a folder")
    assert find_project_root(folder) != (tmp_path / "files").resolve()


def test_project_file_is_read_from_the_discovered_root(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_project_file(root, "max_workers: 6\n")
    deep = root / "notebooks"
    deep.mkdir()
    monkeypatch.chdir(deep)
    assert load_settings().max_workers == 6


def test_settings_can_be_built_directly() -> None:
    settings = Settings(project_root=Path("/p"), store_url="sqlite://", artifact_root="/a")
    assert settings.project_dir == Path("/p/.mlzen")
