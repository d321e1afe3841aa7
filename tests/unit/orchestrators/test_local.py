"""The local orchestrator on every named DAG shape, with threads and with processes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlzen import Client
from mlzen.errors import RunFailedError
from tests import shapes

EXECUTORS = ["threads", "processes"]


@pytest.fixture(params=EXECUTORS)
def executor(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MLZEN_EXECUTOR", request.param)
    return request.param


def output(run, step_id: str, name: str = "output"):
    return run.steps[step_id].outputs[name].load()


def test_chain_passes_values_along(executor: str) -> None:
    run = shapes.chain(length=4)
    assert run.status == "completed"
    assert [s.status for s in run.steps.values()] == ["completed"] * 5
    assert output(run, "increment_4") == 5


def test_diamond_joins_both_branches(executor: str) -> None:
    run = shapes.diamond.with_options(enable_cache=False)()
    assert output(run, "add") == 22
    assert run.steps["add"].inputs["x"].producer.name == "increment"
    assert run.steps["add"].inputs["y"].producer.name == "increment_2"


def test_crossed_branches_keep_argument_order(executor: str) -> None:
    run = shapes.crossed.with_options(enable_cache=False)()
    assert run.steps["add"].parameters == {}
    assert run.steps["add"].inputs["x"].load() == 1
    assert run.steps["add_2"].inputs["x"].load() == 2


def test_fan_out_runs_branches_at_the_same_time(executor: str, tmp_path: Path) -> None:
    # Each branch waits inside its step until all four have arrived.
    run = shapes.fan_out_meeting(folder=str(tmp_path))
    assert [run.steps[f"meet{s}"].status for s in ("", "_2", "_3", "_4")] == ["completed"] * 4
    assert output(run, "total") == 8


def test_failing_middle_step_fails_run_and_keeps_finished_work(executor: str) -> None:
    with pytest.raises(RunFailedError) as caught:
        shapes.failing_middle(seconds=0.3)
    error = caught.value
    assert error.step_name == "boom"
    assert "boom" in str(error) and "resume" in str(error)
    run = Client().get_pipeline_run(error.run_id)
    assert run.status == "failed"
    assert run.steps["boom"].status == "failed"
    assert "ValueError: boom at 1" in run.steps["boom"].error
    # The slow sibling was already running: it finished and its artifact is intact.
    assert run.steps["slow_increment"].status == "completed"
    assert output(run, "slow_increment") == 2
    # Nothing downstream of the failure was started.
    assert "increment" not in run.steps


def test_process_executor_runs_steps_in_other_processes(executor: str) -> None:
    run = shapes.process_ids.with_options(enable_cache=False)()
    pids = {output(run, "pid_of", "pid"), output(run, "pid_of_2", "pid")}
    if executor == "processes":
        assert os.getpid() not in pids
    else:
        assert pids == {os.getpid()}


def test_step_setting_sends_one_step_to_a_process() -> None:
    from mlzen import pipeline

    remote = shapes.pid_of.configure(settings={"executor": "processes"})

    @pipeline(enable_cache=False)
    def mixed() -> None:
        start = shapes.source()
        shapes.pid_of(start)
        remote(start)

    run = mixed()
    assert output(run, "pid_of", "pid") == os.getpid()
    assert output(run, "pid_of_2", "pid") != os.getpid()
