"""The model control plane as a user meets it: Model(...) on pipelines and steps, versions
per run, links to artifacts, stages and promotion, and version creation under parallelism.

Steps live at module level so worker processes can import them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pytest

from mlzen import Client, Model, get_step_context, log_metadata, pipeline, step
from mlzen.errors import (
    ConfigError,
    NotFoundError,
    RunFailedError,
    StageConflictError,
)
from mlzen.gc import collect_garbage

# Every test here runs on SQLite and (where configured) on PostgreSQL.
pytestmark = pytest.mark.usefixtures("store_backend")


@step
def load(rows: int = 10) -> Annotated[list, "data"]:
    return list(range(rows))


@step
def train(data: list, C: float = 1.0) -> Annotated[dict, "model"]:
    linked = get_step_context().model_version
    if linked is not None:
        log_metadata({"accuracy": 0.5 + C / 10}, model=True)
    return {"weights": sum(data) * C, "linked": None if linked is None else str(linked)}


@step(model=Model("reports"))
def report(model: dict) -> Annotated[str, "report"]:
    return f"weights={model['weights']}"


@step
def evaluate(model: dict) -> Annotated[float, "score"]:
    return float(model["weights"])


@step
def shard(index: int) -> Annotated[int, "shard"]:
    return index * index


@step
def no_model_metadata() -> int:
    log_metadata({"x": 1}, model=True)
    return 1


@pipeline(model=Model("churn", description="predicts churn"))
def training(C: float = 1.0):
    evaluate(train(load(), C=C))


@pipeline
def training_with_report(C: float = 1.0):
    report(train(load(), C=C))


@pipeline(model=Model("fan"), enable_cache=False)
def fan_out(width: int = 8):
    for index in range(width):
        shard(index, id=f"shard_{index}")


@pipeline(model=Model("churn", version="production"))
def evaluation():
    evaluate(train(load(), C=3.0))


# -- a new version per run ---------------------------------------------------------------


def test_each_run_makes_one_new_version_linking_every_output() -> None:
    first = training(C=1.0)
    second = training(C=2.0)
    client = Client()
    versions = client.list_model_versions("churn")
    assert [(v.number, v.stage) for v in versions] == [(2, "none"), (1, "none")]
    latest = client.get_model_version("churn")
    assert latest.number == 2 and latest.name == "churn"
    assert latest.run is not None and latest.run.id == second.id
    assert client.get_model_version("churn", 1).run.id == first.id  # type: ignore[union-attr]
    assert set(latest.artifacts) == {"data", "model", "score"}
    assert latest.get_artifact("model").load()["weights"] == 90.0
    assert latest.get_artifact("score").id == second.steps["evaluate"].outputs["score"].id
    assert latest.description == "predicts churn"
    assert [str(v) for v in second.model_versions] == ["<ModelVersion churn:2 none>"]
    assert client.get_model("churn").description == "predicts churn"


def test_a_step_sees_its_model_version_and_logs_metadata_on_it() -> None:
    run = training(C=2.0)
    version = Client().get_model_version("churn", "latest")
    assert run.steps["train"].outputs["model"].load()["linked"] == "churn:1"
    assert version.metadata == {"accuracy": 0.7}


def test_log_metadata_on_a_version_by_id_and_through_the_handle() -> None:
    training()
    version = Client().get_model_version("churn", 1)
    log_metadata({"owner": "ana"}, model_version_id=version.id)
    version.log_metadata({"approved": True})
    assert version.metadata == {"accuracy": 0.6, "owner": "ana", "approved": True}


def test_model_metadata_without_a_model_fails_the_step_naming_the_fix() -> None:
    @pipeline
    def unlinked():
        no_model_metadata()

    with pytest.raises(RunFailedError) as failure:
        unlinked()
    assert "linked to no model" in (failure.value.run.steps["no_model_metadata"].error or "")


def test_a_steps_own_model_overrides_the_pipelines() -> None:
    training_with_report.with_options(model=Model("churn"))()
    client = Client()
    assert set(client.get_model_version("churn").artifacts) == {"data", "model"}
    assert set(client.get_model_version("reports").artifacts) == {"report"}


def test_only_a_step_with_a_model_links_its_outputs() -> None:
    training_with_report()
    assert [m.name for m in Client().list_models()] == ["reports"]


def test_cached_steps_link_the_outputs_they_reuse() -> None:
    first = training()
    second = training()
    assert {s.status for s in second.steps.values()} == {"cached"}
    client = Client()
    new = client.get_model_version("churn", 2)
    old = client.get_model_version("churn", 1)
    assert new.run.id == second.id  # type: ignore[union-attr]
    assert {n: a.id for n, a in new.artifacts.items()} == {
        n: a.id for n, a in old.artifacts.items()
    }
    assert new.get_artifact("model").id == first.steps["train"].outputs["model"].id


def test_cached_steps_carry_the_model_metadata_they_logged() -> None:
    training(C=2.0)
    training(C=2.0)  # fully cached: train does not run, yet version 2 knows its accuracy
    training(C=2.0)  # a hit on a cached step run carries it on too
    client = Client()
    accuracies = [client.get_model_version("churn", n).metadata for n in (1, 2, 3)]
    assert accuracies == [{"accuracy": 0.7}] * 3
    # Only what the reused step logged: a version's own later metadata stays its own.
    client.add_metadata("model_version", client.get_model_version("churn", 3).id, {"note": "x"})
    training(C=2.0)
    assert client.get_model_version("churn", 4).metadata == {"accuracy": 0.7}


def test_deleting_a_run_keeps_the_metadata_of_its_model_version() -> None:
    training(C=2.0)
    cached = training(C=2.0)
    client = Client()
    client.store.delete_run(cached.id)
    assert client.get_model_version("churn", 2).metadata == {"accuracy": 0.7}


fail_switch = {"on": True}


@step
def flaky(model: dict) -> Annotated[str, "verdict"]:
    if fail_switch["on"]:
        raise RuntimeError("flaky step failed")
    return "ok"


@pipeline(model=Model("churn"))
def with_flaky_end():
    flaky(train(load()))


def test_a_resumed_run_gets_its_own_version_linking_what_it_reused() -> None:
    fail_switch["on"] = True
    with pytest.raises(RunFailedError) as failure:
        with_flaky_end()
    fail_switch["on"] = False
    resumed = failure.value.run.resume()
    client = Client()
    failed_version, resumed_version = (
        client.get_model_version("churn", 1),
        client.get_model_version("churn", 2),
    )
    assert set(failed_version.artifacts) == {"data", "model"}
    assert resumed_version.run.id == resumed.id  # type: ignore[union-attr]
    assert set(resumed_version.artifacts) == {"data", "model", "verdict"}
    assert resumed_version.get_artifact("model").id == failed_version.get_artifact("model").id


# -- existing versions -------------------------------------------------------------------


def test_a_run_links_to_an_existing_version_by_stage_number_or_latest() -> None:
    training()
    training()
    client = Client()
    client.get_model_version("churn", 1).promote("production")
    evaluation()
    assert len(client.list_model_versions("churn")) == 2
    production = client.get_model_version("churn", "production")
    assert production.number == 1
    assert production.get_artifact("model").load()["weights"] == 135.0
    # A later link of the same name replaces the earlier one; version 2 is untouched.
    assert client.get_model_version("churn", 2).get_artifact("model").load()["weights"] == 45.0

    evaluation.with_options(model=Model("churn", version=2))()
    assert client.get_model_version("churn", 2).get_artifact("model").load()["weights"] == 135.0
    evaluation.with_options(model="churn:latest")()
    assert len(client.list_model_versions("churn")) == 2
    with_report = training_with_report.with_options(model=Model("churn", version=1))()
    assert [(v.name, v.number) for v in with_report.model_versions] == [
        ("churn", 1),
        ("reports", 1),
    ]


def test_a_missing_version_fails_before_the_run_starts() -> None:
    training()
    with pytest.raises(NotFoundError) as missing:
        evaluation()
    message = str(missing.value)
    assert "Model 'churn' has no version in stage 'production'" in message
    assert "Its versions: 1." in message
    assert "promote('production')" in message
    assert len(Client().list_pipeline_runs(pipeline="evaluation")) == 0

    with pytest.raises(NotFoundError, match=r"No model named 'nope'\. Known models: churn"):
        evaluation.with_options(model=Model("nope", version=1))()


# -- stages and promotion ----------------------------------------------------------------


def test_promoting_takes_the_stage_from_its_holder_only_with_force() -> None:
    for _ in range(3):
        training()
    client = Client()
    client.get_model_version("churn", 1).promote("production")
    second = client.get_model_version("churn", 2)
    with pytest.raises(StageConflictError) as conflict:
        second.promote("production")
    assert "Version 1 of model 'churn' is in production" in str(conflict.value)
    assert "force=True" in str(conflict.value)
    assert client.get_model_version("churn", "production").number == 1
    assert second.stage == "none"

    assert second.promote("production", force=True).stage == "production"
    stages = {v.number: v.stage for v in client.list_model_versions("churn")}
    assert stages == {1: "archived", 2: "production", 3: "none"}

    # Staging is held alone too; none and archived by any number of versions.
    client.get_model_version("churn", 3).promote("staging")
    client.get_model_version("churn", 3).promote("archived")
    assert client.get_model("churn").staging_version is None
    # An archived version can come back, taking the stage from its holder.
    client.get_model_version("churn", 1).promote("production", force=True)
    stages = {v.number: v.stage for v in client.list_model_versions("churn")}
    assert stages == {1: "production", 2: "archived", 3: "archived"}
    assert client.get_model_version("churn", "archived").number == 3
    # Promoting a version to the stage it holds changes nothing and needs no force.
    assert client.get_model_version("churn", 1).promote("production").stage == "production"
    model = client.get_model("churn")
    assert (model.version_count, model.latest_version, model.production_version) == (3, 3, 1)


def test_unknown_names_stages_and_artifacts_are_clear_errors() -> None:
    training()
    client = Client()
    version = client.get_model_version("churn", 1)
    with pytest.raises(ConfigError, match="'live' is not a model stage"):
        version.promote("live")
    with pytest.raises(NotFoundError, match="has no artifact 'weights'. Linked: data, model"):
        version.get_artifact("weights")
    with pytest.raises(NotFoundError, match="Model 'churn' has no version '7'"):
        client.get_model_version("churn", 7)
    with pytest.raises(ConfigError, match="'newest' is not a version of model 'churn'"):
        client.get_model_version("churn", "newest")
    with pytest.raises(NotFoundError, match="No model named 'fraud'"):
        client.list_model_versions("fraud")
    assert client.get_model_version(version.id).number == 1


def test_model_references_are_checked_when_written() -> None:
    with pytest.raises(ConfigError, match="cannot name a model"):
        Model("a:b")
    with pytest.raises(ConfigError, match="version=0"):
        Model("churn", version=0)
    with pytest.raises(ConfigError, match="version='archived'"):
        Model("churn", version="archived")
    with pytest.raises(ConfigError, match="got a int"):
        step(model=3)(lambda: 1)  # type: ignore[arg-type]
    assert Model("churn", " Production ").version == "production"
    assert Model("churn", 3).version == "3"
    assert Model.parse("churn:2") == Model("churn", 2)


def test_the_yaml_run_config_sets_the_model(project: Path) -> None:
    config = project / "run.yaml"
    config.write_text(
        "model: {name: churn}\nsteps:\n  evaluate:\n    model: scores\n", encoding="utf-8"
    )
    training.with_options(config_path=config)()
    client = Client()
    assert set(client.get_model_version("churn").artifacts) == {"data", "model"}
    assert set(client.get_model_version("scores").artifacts) == {"score"}
    config.write_text("model: {title: churn}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="needs a mapping with 'name'"):
        training.with_options(config_path=config)


# -- parallel steps make one version -------------------------------------------------


@pytest.mark.parametrize("executor", ["threads", "processes"])
def test_parallel_steps_of_one_run_create_one_version(
    executor: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLZEN_EXECUTOR", executor)
    run = fan_out(width=8)
    versions = Client().list_model_versions("fan")
    assert len(versions) == 1
    links = versions[0].artifact_links
    # Every step's output is called "shard": one link by name, from one of the steps.
    assert [link["name"] for link in links] == ["shard"]
    assert links[0]["step_run_id"] in {s.id for s in run.steps.values()}
    fan_out(width=8)
    assert [v.number for v in Client().list_model_versions("fan")] == [2, 1]


# -- deleting runs and garbage collection ----------------------------------------------


def test_deleting_a_run_keeps_its_model_version_and_the_artifacts_it_links() -> None:
    run = training()
    client = Client()
    linked = client.get_model_version("churn", 1).get_artifact("model")
    assert client.store.delete_run(run.id) == 0
    version = client.get_model_version("churn", 1)
    assert version.run is None
    assert {link["step_run_id"] for link in version.artifact_links} == {None}
    report = collect_garbage(client)
    assert report.count == 0
    assert version.get_artifact("model").load() == linked.load()


def test_a_run_without_links_still_loses_its_artifacts() -> None:
    training_with_report()  # only "report" is linked
    client = Client()
    run = client.get_pipeline_run("latest")
    assert client.store.delete_run(run.id) == 2  # data and model
    assert collect_garbage(client).count == 2
    assert client.get_model_version("reports", 1).get_artifact("report").load() == "weights=45.0"
