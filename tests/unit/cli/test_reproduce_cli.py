"""`mlzen runs config RUN` (a run config that reruns it) and `mlzen runs env RUN`."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import pytest
import yaml
from click.testing import CliRunner

from mlzen import Client, pipeline, step
from mlzen.cli.main import cli
from mlzen.pipelines import RunConfig
from tests.cli import invoke, run_main
from tests.unit.runtime.test_environment import init_repo


@step
def make(n: int = 3) -> Annotated[list, "values"]:
    return list(range(n))


@step(retries=1)
def scale(values: list, factor: float = 1.0, rounding: int = 2) -> Annotated[list, "scaled"]:
    return [round(v * factor, rounding) for v in values]


@step
def total(values: list) -> Annotated[float, "total"]:
    return float(sum(values))


@pipeline(settings={"team": "ml"})
def numbers(n: int = 3, factor: float = 1.0, label: str = "x", tags: list | None = None):
    total(scale(make(n=n), factor=factor))
    total(make(n=n + 1), id="total_more")


@pytest.fixture
def configured_run():
    """A run with pipeline parameters, per-step parameters, retries and settings."""
    configured = numbers.with_options(
        settings={"region": "eu"},
        steps={
            "scale": {"parameters": {"rounding": 1}, "retries": 3, "settings": {"gpu": False}},
            "total_more": {"enable_cache": False},
        },
    )
    return configured(n=4, factor=0.5, tags=["a", "b"])


def test_config_is_a_run_config_that_reruns_the_run(configured_run, project: Path) -> None:
    result = invoke("runs", "config", configured_run.name)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"# Run configuration of run '{configured_run.name}'")
    data = yaml.safe_load(result.output)
    assert data == {
        "parameters": {"n": 4, "factor": 0.5, "label": "x", "tags": ["a", "b"]},
        "enable_cache": True,
        "settings": {"team": "ml", "region": "eu"},
        "steps": {
            "make": {
                "parameters": {"n": 4},
                "enable_cache": True,
                "retries": 0,
                "settings": {"team": "ml", "region": "eu"},
            },
            "scale": {
                "parameters": {"factor": 0.5, "rounding": 1},
                "enable_cache": True,
                "retries": 3,
                "settings": {"team": "ml", "region": "eu", "gpu": False},
            },
            "total": {
                "parameters": {},
                "enable_cache": True,
                "retries": 0,
                "settings": {"team": "ml", "region": "eu"},
            },
            "make_2": {
                "parameters": {"n": 5},
                "enable_cache": True,
                "retries": 0,
                "settings": {"team": "ml", "region": "eu"},
            },
            "total_more": {
                "parameters": {},
                "enable_cache": False,
                "retries": 0,
                "settings": {"team": "ml", "region": "eu"},
            },
        },
    }
    RunConfig.from_dict(data)  # the shape run configurations have

    path = project / "run.yaml"
    path.write_text(result.output)
    rerun = numbers.with_options(config_path=path)()
    assert rerun.parameters == configured_run.parameters
    statuses = {step_id: s.status for step_id, s in rerun.steps.items()}
    assert statuses.pop("total_more") == "completed"  # its caching stays off, as recorded
    assert set(statuses.values()) == {"cached"}
    assert rerun.spec_data["steps"] == configured_run.spec_data["steps"]
    assert rerun.steps["total"].outputs["total"].load() == 3.0


def test_config_reruns_through_mlzen_run(configured_run, project: Path) -> None:
    path = project / "run.yaml"
    path.write_text(invoke("runs", "config", "latest").output)
    result = invoke("run", f"{__name__}:numbers", "--config", str(path))
    assert result.exit_code == 0, result.output
    rerun = Client().get_pipeline_run("latest")
    assert rerun.id != configured_run.id
    assert rerun.parameters == configured_run.parameters
    assert rerun.steps["scale"].status == "cached"


def test_a_fully_cacheable_run_reruns_fully_cached(project: Path) -> None:
    first = numbers(n=2, factor=3.0, label="plain")
    path = project / "run.yaml"
    path.write_text(invoke("runs", "config", first.id).output)
    rerun = numbers.with_options(config_path=path)()
    assert rerun.parameters == first.parameters
    assert {s.status for s in rerun.steps.values()} == {"cached"}


def test_config_json_is_the_same_mapping(configured_run) -> None:
    as_yaml = yaml.safe_load(invoke("runs", "config", "latest").output)
    as_json = json.loads(invoke("runs", "config", "latest", "--json").output)
    assert as_json == as_yaml


def test_config_of_a_run_without_caching_keeps_it_off() -> None:
    run = numbers.with_options(enable_cache=False)()
    data = json.loads(invoke("runs", "config", run.id, "--json").output)
    assert data["enable_cache"] is False
    assert {s["enable_cache"] for s in data["steps"].values()} == {False}


def test_env_prints_the_recorded_environment(configured_run) -> None:
    result = invoke("runs", "env", "latest")
    assert result.exit_code == 0, result.output
    out = result.output
    environment = configured_run.environment
    assert f"python       {environment['python']} ({platform.python_implementation()})" in out
    assert f"platform     {environment['platform']}" in out
    assert "git          not a git repository" in out
    assert f"packages     {len(environment['packages'])}" in out
    from importlib import metadata

    assert f"  click=={metadata.version('click')}\n" in out
    data = json.loads(invoke("runs", "env", "latest", "--json").output)
    assert set(data) == {
        "run",
        "run_id",
        "python",
        "implementation",
        "platform",
        "packages",
        "git_commit",
        "dirty",
        "diff",
        "diff_truncated",
        "source_hash",
    }
    assert data["packages"] == environment["packages"]
    assert data["git_commit"] is None and data["diff"] is None
    no_diff = CliRunner().invoke(cli, ["runs", "env", "latest", "--diff"])
    assert no_diff.exit_code == 0 and no_diff.stdout == ""
    assert "not in a git repository" in no_diff.stderr


def test_env_shows_git_state_and_the_recorded_diff(project: Path) -> None:
    commit = init_repo(project, {"notes.txt": "one\ntwo\n", ".gitignore": ".mlzen/\nrun.yaml\n"})
    clean = numbers()
    (project / "notes.txt").write_text("one\nthree\n")
    dirty = numbers()

    clean_out = invoke("runs", "env", clean.id).output
    assert f"git          {commit} (clean)" in clean_out
    clean_diff = CliRunner().invoke(cli, ["runs", "env", clean.id, "--diff"])
    assert clean_diff.stdout == "" and f"the tree was clean at {commit}" in clean_diff.stderr

    dirty_out = invoke("runs", "env", dirty.id).output
    assert f"git          {commit} (dirty: 1 file changed;" in dirty_out
    assert f"mlzen runs env {dirty.name} --diff" in dirty_out
    diff = CliRunner().invoke(cli, ["runs", "env", dirty.id, "--diff"]).stdout
    assert diff == dirty.code_version["diff"]
    assert "-two\n+three\n" in diff
    data = json.loads(invoke("runs", "env", dirty.id, "--json").output)
    assert data["git_commit"] == commit and data["dirty"] is True and data["diff"] == diff

    config = invoke("runs", "config", dirty.id).output
    assert f"# Code: git {commit[:12]} (dirty: see `mlzen runs env {dirty.name} --diff`)" in config
    # The recorded diff restores the dirty tree on top of the commit.
    subprocess.run(["git", "checkout", "-q", "--", "notes.txt"], cwd=project, check=True)
    (project / "recorded.patch").write_text(diff)
    subprocess.run(["git", "apply", "recorded.patch"], cwd=project, check=True)
    assert (project / "notes.txt").read_text() == "one\nthree\n"


@pytest.mark.parametrize("command", ["config", "env"])
def test_unknown_run_exits_2_naming_it(command: str) -> None:
    numbers()
    code, out, err = run_main("runs", command, "no-such-run")
    assert code == 2 and out == ""
    assert err.startswith("Error: ") and "'no-such-run'" in err
    assert "Traceback" not in err


def test_latest_without_runs_exits_2() -> None:
    code, _, err = run_main("runs", "config", "latest")
    assert code == 2 and "no runs yet" in err


@pytest.mark.parametrize(
    ("command", "summary", "example"),
    [
        (
            "config",
            "Print RUN's resolved configuration as a YAML run config that reruns it.",
            "Example: mlzen runs config latest > run.yaml",
        ),
        (
            "env",
            "Print the environment RUN recorded: Python, platform, packages and git state.",
            "Example: mlzen runs env latest --diff > uncommitted.patch",
        ),
    ],
)
def test_help_has_a_summary_and_an_example(command: str, summary: str, example: str) -> None:
    result = invoke("runs", command, "--help")
    assert result.exit_code == 0
    assert summary in result.output and example in result.output
    assert "--json" in result.output


def test_command_module_imports_nothing_heavy() -> None:
    probe = "import sys, json, mlzen.cli.reproduce; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = {name.split(".")[0] for name in json.loads(out.stdout)}
    assert not loaded & {"sqlalchemy", "pandas", "numpy", "rich", "yaml", "pyarrow"}
