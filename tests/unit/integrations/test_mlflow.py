"""MLflow as the experiment tracker: a real SQLite tracking store, read back with MlflowClient."""

from __future__ import annotations

import pickle
import socket
from pathlib import Path
from typing import Annotated, Any

import pytest

mlflow = pytest.importorskip("mlflow")
pytest.importorskip("sklearn")

import numpy as np  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from mlzen import Client, get_step_context, log_metadata, pipeline, step  # noqa: E402
from mlzen.cli.main import cli  # noqa: E402
from mlzen.errors import ConfigError, RunFailedError  # noqa: E402
from mlzen.integrations.mlflow import MlflowExperimentTracker, MlflowStepRun  # noqa: E402
from mlzen.stack import Stack, active_stack, load_stack  # noqa: E402
from mlzen.stack_registry import (  # noqa: E402
    describe_stack,
    list_stacks,
    register_component,
    register_stack,
)

pytestmark = [
    # MLflow's SQL tracking store declares a `noload` relationship, which SQLAlchemy 2.1
    # deprecates; it is MLflow's to change, and harmless here.
    pytest.mark.filterwarnings(
        "ignore:The ``noload`` loader strategy is deprecated:sqlalchemy.exc.SADeprecationWarning"
    ),
]


@pytest.fixture(autouse=True)
def own_mlflow_globals(monkeypatch: pytest.MonkeyPatch) -> None:
    """autolog sets MLflow's process-wide tracking URI; give it back after each test."""
    from mlflow.tracking._tracking_service import utils

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(utils, "_tracking_uri", None)


def use_tracker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **options: Any) -> MlflowClient:
    """Register an MLflow tracker in tmp_path and make a stack with it active."""
    uri = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    register_component("experiment_tracker", "mlf", "mlflow", {"tracking_uri": uri, **options})
    register_stack(
        "tracked",
        {"orchestrator": "local", "artifact_store": "local", "experiment_tracker": "mlf"},
    )
    monkeypatch.setenv("MLZEN_STACK", "tracked")
    return MlflowClient(tracking_uri=uri)


def all_runs(client: MlflowClient, experiment: str) -> list[Any]:
    found = client.get_experiment_by_name(experiment)
    assert found is not None
    return client.search_runs([found.experiment_id])


def runs_of(client: MlflowClient, experiment: str) -> dict[str, Any]:
    """The experiment's runs by MLflow run name (a step's invocation id, or the run name)."""
    return {r.info.run_name: r for r in all_runs(client, experiment)}


# -- steps and pipelines ----------------------------------------------------------------


@step
def load(rows: int = 40) -> Annotated[list[int], "raw"]:
    return list(range(rows))


@step
def evaluate(raw: list[int], C: float = 1.0) -> Annotated[float, "score"]:
    log_metadata(
        {"accuracy": 0.75, "rows": len(raw), "note": "text", "flag": True, "scores": {"f1": 0.5}}
    )
    tracked = get_step_context().experiment_tracker
    for epoch, loss in enumerate((0.9, 0.4)):
        tracked.log_metric("loss", loss, step=epoch)
    return sum(raw) * C


@pipeline
def training(C: float = 0.5) -> None:
    evaluate(load(), C=C)


@step
def explode(raw: list[int]) -> int:
    raise ValueError("no good")


@pipeline(enable_cache=False)
def failing() -> None:
    explode(load())


@step(enable_cache=False)
def fit(raw: list[int], C: float = 1.0) -> Annotated[float, "train_score"]:
    rng = np.random.default_rng(len(raw))
    X = rng.normal(size=(len(raw), 3))
    y = (X[:, 0] > 0).astype(int)
    model = LogisticRegression(C=C, max_iter=50).fit(X, y)
    log_metadata({"index": C})
    return float(model.score(X, y))


@pipeline(enable_cache=False)
def fan_out(count: int = 4) -> None:
    raw = load()
    for index in range(count):
        fit(raw, C=float(index + 1))


# -- tests -------------------------------------------------------------------------------


def test_pipeline_run_is_a_parent_run_and_each_step_a_child(monkeypatch, tmp_path) -> None:
    client = use_tracker(monkeypatch, tmp_path)
    run = training(C=0.25)
    runs = runs_of(client, "training")
    assert set(runs) == {run.name, "load", "evaluate"}

    parent = runs[run.name]
    assert parent.info.status == "FINISHED"
    assert parent.data.params == {"C": "0.25"}
    assert parent.data.tags["mlzen.run_id"] == run.id
    assert parent.data.tags["mlzen.pipeline_name"] == "training"
    assert "mlflow.parentRunId" not in parent.data.tags

    child = runs["evaluate"]
    assert child.info.status == "FINISHED"
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert child.data.tags["mlzen.step_run_id"] == run.steps["evaluate"].id
    assert child.data.tags["mlzen.run_name"] == run.name
    assert child.data.tags["mlzen.step_name"] == "evaluate"
    assert child.data.tags["mlzen.cache_hit"] == "false"
    assert child.data.params == {"C": "0.25"}
    # Numbers (nested ones too) become metrics; text and booleans stay in mlzen only.
    assert child.data.metrics == {"accuracy": 0.75, "rows": 40.0, "scores.f1": 0.5, "loss": 0.4}
    history = client.get_metric_history(child.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 0.9), (1, 0.4)]
    assert runs["load"].data.params == {"rows": "40"}
    assert runs["load"].data.metrics == {}
    # Artifacts go beside the tracking file, not into the working directory.
    experiment = client.get_experiment_by_name("training")
    assert experiment.artifact_location == (tmp_path / "mlflow" / "artifacts").as_uri()


def test_failing_step_ends_its_run_and_the_parent_failed(monkeypatch, tmp_path) -> None:
    client = use_tracker(monkeypatch, tmp_path, experiment_name="experiments")
    with pytest.raises(RunFailedError) as caught:
        failing()
    runs = runs_of(client, "experiments")
    run_name = Client().get_pipeline_run(caught.value.run_id).name
    assert runs[run_name].info.status == "FAILED"
    assert runs["explode"].info.status == "FAILED"
    assert runs["load"].info.status == "FINISHED"


def test_cached_step_is_a_finished_child_tagged_as_a_cache_hit(monkeypatch, tmp_path) -> None:
    client = use_tracker(monkeypatch, tmp_path)
    first = training()
    second = training()
    assert second.steps["evaluate"].status == "cached"
    children = [
        r
        for r in all_runs(client, "training")
        if r.data.tags.get("mlzen.run_id") == second.id and "mlzen.step_name" in r.data.tags
    ]
    assert {r.info.run_name for r in children} == {"load", "evaluate"}
    for child in children:
        name = child.info.run_name
        assert child.info.status == "FINISHED"
        assert child.data.tags["mlzen.cache_hit"] == "true"
        assert child.data.tags["mlzen.cached_from"] == first.steps[name].id
        assert child.data.metrics == {}


def test_parallel_threads_log_to_their_own_runs(monkeypatch, tmp_path) -> None:
    client = use_tracker(monkeypatch, tmp_path)
    fan_out(count=6)
    children = [r for r in all_runs(client, "fan_out") if "mlzen.invocation_id" in r.data.tags]
    fits = {r.data.tags["mlzen.invocation_id"]: r for r in children if r.info.run_name != "load"}
    assert sorted(fits) == ["fit", "fit_2", "fit_3", "fit_4", "fit_5", "fit_6"]
    for invocation, child in fits.items():
        index = float(invocation.partition("_")[2] or 1)
        assert child.data.params == {"C": str(index)}  # the step's parameter; no autolog
        assert child.data.metrics == {"index": index}
        assert child.info.status == "FINISHED"


def test_parallel_threads_keep_each_step_in_its_own_run_with_autolog(monkeypatch, tmp_path) -> None:
    client = use_tracker(monkeypatch, tmp_path, autolog=True)
    run = fan_out()
    children = {
        r.data.tags["mlzen.invocation_id"]: r
        for r in runs_of(client, "fan_out").values()
        if "mlzen.invocation_id" in r.data.tags
    }
    assert len(children) == 5
    for index, invocation in enumerate(["fit", "fit_2", "fit_3", "fit_4"]):
        child = children[invocation]
        assert child.info.status == "FINISHED"
        assert child.data.metrics["index"] == float(index + 1)
        # Logged by MLflow's scikit-learn autolog inside the step, into the step's run.
        assert child.data.params["C"] == str(float(index + 1))
        assert child.data.params["max_iter"] == "50"
        assert (
            child.data.tags["mlflow.parentRunId"]
            == runs_of(client, "fan_out")[run.name].info.run_id
        )
        assert "training_score" in child.data.metrics
    # Autolog is off again outside tracked steps: a plain fit here logs nowhere.
    assert mlflow.active_run() is None
    experiments = [e.experiment_id for e in client.search_experiments()]
    before = len(client.search_runs(experiments))
    LogisticRegression().fit(np.eye(4), [0, 1, 0, 1])
    assert len(client.search_runs(experiments)) == before


def test_process_workers_record_steps_with_autolog(monkeypatch, tmp_path) -> None:
    client = use_tracker(monkeypatch, tmp_path, autolog=True)
    monkeypatch.setenv("MLZEN_EXECUTOR", "processes")
    run = fan_out(count=2)
    runs = runs_of(client, "fan_out")
    parent_id = runs[run.name].info.run_id
    for index, invocation in enumerate(["fit", "fit_2"]):
        child = runs[invocation]
        assert child.info.status == "FINISHED"
        assert child.data.tags["mlflow.parentRunId"] == parent_id
        assert child.data.metrics["index"] == float(index + 1)
        assert child.data.params["max_iter"] == "50"


def test_not_nested_makes_every_step_a_top_level_run(monkeypatch, tmp_path) -> None:
    client = use_tracker(monkeypatch, tmp_path, nested=False)
    run = training()
    runs = runs_of(client, "training")
    assert set(runs) == {"load", "evaluate"}
    for child in runs.values():
        assert "mlflow.parentRunId" not in child.data.tags
        assert child.data.tags["mlzen.run_id"] == run.id


def test_tracker_is_optional_and_registered_by_the_cli(project: Path, tmp_path) -> None:
    runner = CliRunner()
    uri = f"sqlite:///{tmp_path / 'cli.db'}"
    for args in (
        ["component", "register", "experiment_tracker", "mlf", "--flavor", "mlflow"]
        + ["--tracking_uri", uri, "--autolog", "true"],
        ["stack", "register", "tracked", "-o", "local", "-a", "local", "-e", "mlf"],
        ["stack", "register", "plain", "-o", "local", "-a", "local"],
    ):
        result = runner.invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
    tracked = load_stack("tracked")
    assert isinstance(tracked.experiment_tracker, MlflowExperimentTracker)
    assert tracked.experiment_tracker.tracking_uri == uri
    assert tracked.experiment_tracker.autolog is True
    assert tracked.components["experiment_tracker"] == "mlf"
    assert describe_stack("tracked")["components"]["experiment_tracker"]["flavor"] == "mlflow"
    plain = load_stack("plain")
    assert plain.experiment_tracker is None
    assert "experiment_tracker" not in plain.components
    assert active_stack().experiment_tracker is None
    assert "experiment_tracker" not in Stack(active_stack().settings).components
    stacks = {s["name"]: s["components"] for s in list_stacks()}
    assert "experiment_tracker" not in stacks["local"]
    assert stacks["tracked"]["experiment_tracker"] == "mlf"
    with pytest.raises(ConfigError, match="no built-in experiment_tracker"):
        register_stack("bad", {"orchestrator": "local", "experiment_tracker": "local"})


def test_default_and_relative_tracking_uris_are_in_the_project(project: Path) -> None:
    register_component("experiment_tracker", "default", "mlflow", {})
    register_component(
        "experiment_tracker", "relative", "mlflow", {"tracking_uri": "sqlite:///runs/m.db"}
    )
    register_component("experiment_tracker", "folder", "mlflow", {"tracking_uri": "mlruns"})
    uris = {}
    for name in ("default", "relative", "folder"):
        register_stack(name, {"orchestrator": "local", "experiment_tracker": name})
        uris[name] = load_stack(name).experiment_tracker.tracking_uri
    assert uris == {
        "default": f"sqlite:///{project / '.mlzen' / 'mlflow' / 'mlflow.db'}",
        "relative": f"sqlite:///{project / 'runs' / 'm.db'}",
        "folder": str(project / "mlruns"),
    }


@pytest.mark.parametrize(
    ("options", "culprit"),
    [
        ({"tracking_uri": "sqlite:relative.db"}, "tracking_uri"),
        ({"experiment_name": " "}, "experiment_name"),
        ({"autolog": "sometimes"}, "autolog"),
        ({"trackinguri": "x"}, "trackinguri"),
    ],
)
def test_bad_options_are_rejected_at_registration(project, options, culprit) -> None:
    with pytest.raises(ConfigError) as caught:
        register_component("experiment_tracker", "bad", "mlflow", options)
    assert caught.value.fields["option"] == culprit


def test_unreachable_tracking_server_fails_the_run_with_a_clear_error(monkeypatch) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    uri = f"http://me:hunter2@127.0.0.1:{port}"
    register_component("experiment_tracker", "down", "mlflow", {"tracking_uri": uri})
    register_stack("down", {"orchestrator": "local", "experiment_tracker": "down"})
    monkeypatch.setenv("MLZEN_STACK", "down")
    with pytest.raises(ConfigError, match="experiment tracker .*could not start the run") as caught:
        training()
    assert "hunter2" not in str(caught.value)
    assert Client().get_pipeline_run("latest").status == "failed"


def test_tracker_pickles_without_its_client(tmp_path) -> None:
    tracker = MlflowExperimentTracker(f"sqlite:///{tmp_path / 'p.db'}", autolog=True)
    assert tracker.client is not None
    copy = pickle.loads(pickle.dumps(tracker))
    assert vars(copy) == vars(tracker)
    assert "password" not in repr(MlflowExperimentTracker("http://me:password@host:5000"))
    assert isinstance(MlflowStepRun("r", None, "0", tracker.tracking_uri).client, MlflowClient)
