"""`mlzen models list | versions | show | promote`."""

from __future__ import annotations

import json
from typing import Annotated

import pytest

from mlzen import Client, Model, log_metadata, pipeline, step
from tests.cli import invoke, run_main


@step
def features(rows: int = 4) -> Annotated[list, "features"]:
    return list(range(rows))


@step
def fit(features: list) -> Annotated[dict, "classifier"]:
    log_metadata({"auc": 0.5 + len(features) / 100}, model=True)
    return {"n": len(features)}


@pipeline(model=Model("churn", description="churn classifier"))
def training(rows: int = 4):
    fit(features(rows))


@pytest.fixture
def three_versions() -> list:
    runs = [training(rows=n) for n in (4, 5, 6)]
    Client().get_model_version("churn", 2).promote("production")
    return runs


def test_list_shows_counts_and_stage_holders(three_versions) -> None:
    table = invoke("models", "list").output
    assert "churn" in table and "production" in table
    data = json.loads(invoke("models", "list", "--json").output)
    assert data == [
        {
            "id": data[0]["id"],
            "name": "churn",
            "description": "churn classifier",
            "created_at": data[0]["created_at"],
            "version_count": 3,
            "latest_version": 3,
            "staging_version": None,
            "production_version": 2,
        }
    ]


def test_versions_lists_newest_first_with_stage_and_run(three_versions) -> None:
    result = invoke("models", "versions", "churn")
    assert result.exit_code == 0, result.output
    lines = [line.split() for line in result.output.splitlines()[1:]]
    assert [(line[0], line[1]) for line in lines] == [
        ("3", "none"),
        ("2", "production"),
        ("1", "none"),
    ]
    assert lines[1][2] == three_versions[1].name
    data = json.loads(invoke("models", "versions", "churn", "--json").output)
    assert [v["version"] for v in data] == [3, 2, 1]
    assert set(data[0]["artifacts"]) == {"features", "classifier"}


def test_show_accepts_numbers_stages_and_latest(three_versions) -> None:
    for ref, number in (("churn:production", 2), ("churn:1", 1), ("churn", 3), ("churn:latest", 3)):
        data = json.loads(invoke("models", "show", ref, "--json").output)
        assert data["version"] == number, ref
    data = json.loads(invoke("models", "show", "churn:production", "--json").output)
    assert data["run_id"] == three_versions[1].id
    assert data["metadata"] == {"auc": 0.55}
    assert data["artifacts"]["classifier"] == (
        three_versions[1].steps["fit"].outputs["classifier"].id
    )
    out = invoke("models", "show", "churn:production").output
    assert "churn:2  production" in out
    assert three_versions[1].name in out
    assert "classifier:2" in out and "auc" in out and "0.55" in out


def test_promote_needs_force_to_take_a_held_stage(three_versions) -> None:
    code, _, err = run_main("models", "promote", "churn:3", "production")
    assert code == 2
    assert "Version 2 of model 'churn' is in production" in err and "--force" in err
    assert Client().get_model_version("churn", "production").number == 2

    result = invoke("models", "promote", "churn:3", "production", "--force")
    assert result.output.splitlines() == [
        "churn:3 is now in production.",
        "churn:2 was in production and is now archived.",
    ]
    data = json.loads(invoke("models", "promote", "churn:1", "staging", "--json").output)
    assert (data["version"], data["stage"], data["archived_version"]) == (1, "staging", None)
    stages = {v.number: v.stage for v in Client().list_model_versions("churn")}
    assert stages == {1: "staging", 2: "archived", 3: "production"}


def test_unknown_models_versions_and_stages_are_clear_errors(three_versions) -> None:
    code, _, err = run_main("models", "show", "fraud:1")
    assert code == 2 and "No model named 'fraud'. Known models: churn." in err
    code, _, err = run_main("models", "show", "churn:staging")
    assert code == 2
    assert "has no version in stage 'staging'. Its versions: 1, 2 (production), 3." in err
    code, _, err = run_main("models", "versions", "fraud")
    assert code == 2 and "No model named 'fraud'" in err
    code, _, err = run_main("models", "promote", "churn:1", "live")
    assert code == 2 and "'live' is not one of" in err


def test_no_models_yet() -> None:
    assert json.loads(invoke("models", "list", "--json").output) == []
    assert invoke("models", "list").exit_code == 0


@step(model=Model("scores", version="latest"))
def rate(classifier: dict) -> Annotated[float, "rating"]:
    return classifier["n"] / 10


@pipeline(model=Model("churn"))
def rated(rows: int = 4):
    rate(fit(features(rows)))


def test_runs_config_keeps_the_models_so_a_rerun_links_the_same_way(project) -> None:
    training.with_options(model="scores")()  # scores:1, for rate's "latest" to link to
    run = rated()
    config = json.loads(invoke("runs", "config", run.id, "--json").output)
    assert config["model"] == {"name": "churn", "version": None, "description": None}
    assert config["steps"]["rate"]["model"]["name"] == "scores"
    assert "model" not in config["steps"]["fit"]
    path = project / "rerun.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")
    rerun = rated.with_options(config_path=path)()
    client = Client()
    assert client.get_model_version("churn").run.id == rerun.id  # type: ignore[union-attr]
    assert client.get_model_version("scores", 1).get_artifact("rating").load() == 0.4
    assert len(client.list_model_versions("scores")) == 1


def test_runs_show_names_the_model_versions_a_run_linked(three_versions) -> None:
    out = invoke("runs", "show", three_versions[1].id).output
    assert "models: churn:2 (production)" in out
