"""The Client as a notebook user meets it: the DESIGN.md pipeline, runs, lineage, resume."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import pytest

from mlzen import Client, pipeline, step
from mlzen.errors import RunFailedError
from mlzen.store.metadata import utcnow

fail_switch = {"on": True}


# Every Client test runs on SQLite and on PostgreSQL.
pytestmark = pytest.mark.usefixtures("store_backend")


@step
def load(rows: int = 10) -> Annotated[list, "raw"]:
    return list(range(rows))


@step
def split(
    data: list, test_size: float = 0.2
) -> tuple[Annotated[list, "train"], Annotated[list, "test"]]:
    cut = int(len(data) * (1 - test_size))
    return data[:cut], data[cut:]


@step
def train(train: list, C: float = 1.0) -> Annotated[float, "model"]:
    if fail_switch["on"]:
        raise RuntimeError("training diverged")
    return sum(train) * C


@step
def evaluate(model: float, test: list) -> Annotated[dict, "metrics"]:
    return {"score": model / (1 + sum(test))}


@pipeline
def training(test_size: float = 0.2, C: float = 1.0) -> None:
    train_df, test_df = split(load(), test_size=test_size)
    model = train(train_df, C=C)
    evaluate(model, test_df)


@pytest.fixture
def finished_run():
    fail_switch["on"] = False
    return training(C=0.5)


def test_run_handle_exposes_steps_outputs_inputs_and_parameters(finished_run) -> None:
    run = finished_run
    assert run.status == "completed"
    assert run.parameters == {"test_size": 0.2, "C": 0.5}
    assert run.steps["train"].parameters == {"C": 0.5}
    assert run.steps["train"].outputs["model"].load() == 14.0
    assert run.steps["train"].inputs["train"].load() == list(range(8))
    assert run.duration is not None and run.duration >= 0
    assert run.steps["train"].duration >= 0
    assert run.code_version["source_hash"]
    assert run.environment["python"].count(".") == 2


def test_latest_and_numbered_artifact_versions(finished_run) -> None:
    training.with_options(enable_cache=False)(C=0.5)
    client = Client()
    assert client.get_artifact_version("raw").version == 2
    assert client.get_artifact_version("raw", version=1).load() == list(range(10))
    versions = client.list_artifact_versions("raw")
    assert [v.version for v in versions] == [2, 1]
    # identical content shares one stored copy
    assert versions[0].uri == versions[1].uri
    raw = client.get_artifact_version("raw")
    assert raw.metadata["length"] == 10


def test_lineage_both_ways(finished_run) -> None:
    model = Client().get_artifact_version("model")
    assert model.producer.name == "train"
    assert [c.name for c in model.consumers] == ["evaluate"]
    raw = Client().get_artifact_version("raw")
    assert [c.name for c in raw.consumers] == ["split"]


def test_list_and_filter_runs(finished_run) -> None:
    fail_switch["on"] = True
    with pytest.raises(RunFailedError):
        training.with_options(enable_cache=False)()
    client = Client()
    runs = client.list_pipeline_runs()
    assert [r.status for r in runs] == ["failed", "completed"]
    assert [r.status for r in client.list_pipeline_runs(status="completed")] == ["completed"]
    assert client.list_pipeline_runs(pipeline="nope") == []
    assert len(client.list_pipeline_runs(limit=1, offset=1)) == 1
    future = utcnow() + timedelta(hours=1)
    assert client.list_pipeline_runs(created_after=future) == []
    assert len(client.list_pipeline_runs(created_before=future)) == 2
    assert client.get_pipeline_run(runs[0].id[:10]).id == runs[0].id
    assert client.get_pipeline_run(runs[0].name).id == runs[0].id
    assert client.list_pipelines()[0]["name"] == "training"
    assert client.list_pipelines()[0]["run_count"] == 2


def test_failed_run_resumes_only_what_did_not_succeed() -> None:
    fail_switch["on"] = True
    with pytest.raises(RunFailedError) as caught:
        training.with_options(enable_cache=False)()
    failed = caught.value.run
    assert failed.steps["train"].status == "failed"
    assert "evaluate" not in failed.steps
    fail_switch["on"] = False
    resumed = failed.resume()
    assert resumed.status == "completed"
    assert resumed.resumed_from_id == failed.id
    statuses = {name: s.status for name, s in resumed.steps.items()}
    assert statuses == {
        "load": "cached",
        "split": "cached",
        "train": "completed",
        "evaluate": "completed",
    }
    assert resumed.steps["load"].cached_from_id == failed.steps["load"].id
    assert Client().get_pipeline_run(failed.id).status == "failed"


def test_resume_from_argument_on_the_pipeline_call() -> None:
    fail_switch["on"] = True
    with pytest.raises(RunFailedError) as caught:
        training.with_options(enable_cache=False)(C=2.0)
    fail_switch["on"] = False
    resumed = training.with_options(enable_cache=False)(C=2.0, resume_from=caught.value.run)
    assert resumed.steps["split"].status == "cached"
    assert resumed.steps["train"].status == "completed"
    assert resumed.steps["evaluate"].outputs["metrics"].load()["score"] > 0


def test_cached_rerun_does_no_step_work(finished_run) -> None:
    again = training(C=0.5)
    assert {s.status for s in again.steps.values()} == {"cached"}
    assert (
        again.steps["train"].outputs["model"].id == finished_run.steps["train"].outputs["model"].id
    )


def test_step_invocations_get_numbered_ids() -> None:
    @pipeline
    def twice():
        load(rows=2)
        load(rows=3)
        load(rows=4, id="custom")

    run = twice()
    assert set(run.steps) == {"load", "load_2", "custom"}
    assert run.steps["custom"].outputs["raw"].load() == [0, 1, 2, 3]


def test_after_orders_steps_without_data() -> None:
    @pipeline(enable_cache=False)
    def ordered():
        first = load(rows=1)
        load.after(first)
        load(rows=2)

    run = ordered()
    assert run.steps["load_2"].started_at >= run.steps["load"].ended_at
