"""`mlzen runs list | show | logs | resume | delete`."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from mlzen import Client
from mlzen.cli.main import cli
from mlzen.errors import RunFailedError
from tests.unit.cli import pipelines_for_cli


def invoke(*args: str, input: str | None = None):
    return CliRunner().invoke(cli, list(args), input=input)


@pytest.fixture
def two_runs():
    first = pipelines_for_cli.arithmetic(count=2)
    second = pipelines_for_cli.arithmetic.with_options(enable_cache=False)(count=5)
    return first, second


def test_list_filters_and_json_keys(two_runs) -> None:
    result = invoke("runs", "list", "--json")
    data = json.loads(result.output)
    assert [r["id"] for r in data] == [two_runs[1].id, two_runs[0].id]
    assert set(data[0]) == {
        "id",
        "name",
        "pipeline",
        "status",
        "created_at",
        "ended_at",
        "duration_s",
        "parameters",
        "stack",
        "resumed_from",
    }
    assert len(json.loads(invoke("runs", "list", "--json", "--limit", "1").output)) == 1
    assert json.loads(invoke("runs", "list", "--json", "--status", "failed").output) == []
    assert json.loads(invoke("runs", "list", "--json", "--pipeline", "other").output) == []
    table = invoke("runs", "list")
    assert two_runs[0].name in table.output and "completed" in table.output


def test_show_draws_the_dag_and_accepts_every_kind_of_reference(two_runs) -> None:
    _, second = two_runs
    for ref in (second.id, second.id[:8], second.name, "latest"):
        result = invoke("runs", "show", ref)
        assert result.exit_code == 0, result.output
        assert second.name in result.output
    tree = invoke("runs", "show", "latest").output
    assert tree.index("numbers") < tree.index("scale") < tree.index("summed")
    assert "total → total:2" in tree
    data = json.loads(invoke("runs", "show", "latest", "--json").output)
    assert [s["step"] for s in data["steps"]] == ["numbers", "scale", "summed"]
    assert data["steps"][2]["inputs"] == {"values": "scaled:2"}


def test_show_marks_steps_that_never_ran() -> None:
    pipelines_for_cli.switch["fail"] = True
    try:
        with pytest.raises(RunFailedError):
            pipelines_for_cli.arithmetic()
    finally:
        pipelines_for_cli.switch["fail"] = False
    output = invoke("runs", "show", "latest").output
    assert "not run" in output and "failed" in output and "scale exploded" in output


def test_show_cuts_long_parameter_values_and_json_keeps_them_whole() -> None:
    label = "L" * 5_000
    pipelines_for_cli.arithmetic(label=label)

    output = invoke("runs", "show", "latest").output
    assert "label='LLL" in output and label not in output and "..." in output
    shown = json.loads(invoke("runs", "show", "latest", "--json").output)
    assert shown["parameters"]["label"] == label


def test_unknown_run_is_a_user_error_naming_it() -> None:
    result = invoke("runs", "show", "no-such-run")
    assert result.exit_code != 0
    assert "no-such-run" in str(result.exception)


def test_logs_for_a_run_and_for_one_step(two_runs) -> None:
    assert "making 5 numbers" in invoke("runs", "logs", "latest").output
    assert "making 5 numbers" in invoke("runs", "logs", "latest", "numbers").output
    missing = invoke("runs", "logs", "latest", "nope")
    assert "'nope'" in str(missing.exception)


def test_resume_completes_a_failed_run() -> None:
    pipelines_for_cli.switch["fail"] = True
    try:
        with pytest.raises(RunFailedError):
            pipelines_for_cli.arithmetic.with_options(enable_cache=False)(count=7)
    finally:
        pipelines_for_cli.switch["fail"] = False
    result = invoke("runs", "resume", "latest")
    assert result.exit_code == 0, result.output
    resumed = Client().get_pipeline_run("latest")
    assert resumed.status == "completed"
    assert resumed.steps["numbers"].status == "cached"
    assert resumed.steps["summed"].outputs["total"].load() == 21.0


def test_delete_asks_and_removes_only_what_the_run_alone_used(two_runs) -> None:
    first, second = two_runs
    declined = invoke("runs", "delete", first.id, input="n\n")
    assert declined.exit_code == 1
    assert len(Client().list_pipeline_runs()) == 2
    deleted = invoke("runs", "delete", second.id, "--yes")
    assert deleted.exit_code == 0, deleted.output
    remaining = Client().list_pipeline_runs()
    assert [r.id for r in remaining] == [first.id]
    assert first.steps["summed"].outputs["total"].load() == 1.0
    assert [v.version for v in Client().list_artifact_versions("total")] == [1]
