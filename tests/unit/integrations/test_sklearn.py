"""scikit-learn models through skops, or joblib when skops would not load them safely."""

from __future__ import annotations

import json
from typing import Annotated, Any

import pytest

sklearn = pytest.importorskip("sklearn")
pytest.importorskip("skops")

import numpy as np  # noqa: E402
from sklearn.base import BaseEstimator, ClassifierMixin  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import Pipeline, make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from mlzen import pipeline, step  # noqa: E402
from mlzen.artifacts.materializer import materializer_for  # noqa: E402
from mlzen.integrations.sklearn import (  # noqa: E402
    JOBLIB_FILE,
    SKOPS_FILE,
    SklearnMaterializer,
)
from tests.unit.artifacts.helpers import roundtrip  # noqa: E402

NAME = "mlzen.integrations.sklearn:SklearnMaterializer"


class ThresholdClassifier(ClassifierMixin, BaseEstimator):
    """A custom estimator: skops does not trust its class, so joblib stores it."""

    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold = threshold

    def fit(self, X: Any, y: Any) -> ThresholdClassifier:
        self.classes_ = np.unique(y)
        self.mean_ = np.asarray(X).mean(axis=0)
        return self

    def predict(self, X: Any) -> Any:
        return (np.asarray(X)[:, 0] > self.threshold).astype(int)


def data() -> tuple[Any, Any]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    return X, y


def fitted_pipeline(C: float = 0.5) -> Pipeline:
    X, y = data()
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=200)).fit(X, y)


def test_pipeline_and_estimators_resolve_through_base_estimator_entry_point(registry) -> None:
    assert materializer_for(fitted_pipeline()) is SklearnMaterializer
    assert materializer_for(LogisticRegression()) is SklearnMaterializer
    key, source, _ = registry.chain(LogisticRegression)[0]
    assert key == "sklearn.base.BaseEstimator"
    assert source.startswith("entry point")


def test_fitted_pipeline_roundtrips_through_skops(store) -> None:
    model = fitted_pipeline()
    saved, loaded = roundtrip(store, model)
    assert saved.materializer == NAME
    assert saved.metadata["format"] == "skops"
    assert "note" not in saved.metadata
    folder = store.local_path(saved.uri, saved.content_hash)
    assert [p.name for p in folder.iterdir()] == [SKOPS_FILE]
    assert type(loaded) is Pipeline
    X, _ = data()
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_hyper_parameters_are_recorded_as_json_metadata(store) -> None:
    saved, _ = roundtrip(store, fitted_pipeline(C=0.25))
    metadata = saved.metadata
    json.dumps(metadata)
    assert metadata["class"] == "sklearn.pipeline.Pipeline"
    assert metadata["fitted"] is True
    steps = metadata["params"]["steps"]
    assert [name for name, _ in steps] == ["standardscaler", "logisticregression"]
    logistic = steps[1][1]
    assert logistic["class"].endswith("LogisticRegression")
    assert logistic["params"]["C"] == 0.25
    assert logistic["params"]["max_iter"] == 200


def test_single_estimator_params_and_unfitted_state(store) -> None:
    saved, loaded = roundtrip(store, LogisticRegression(C=2.0, tol=float("nan")))
    assert saved.metadata["fitted"] is False
    assert saved.metadata["params"]["C"] == 2.0
    assert saved.metadata["params"]["tol"] == "nan"
    assert loaded.get_params()["C"] == 2.0


def test_untrusted_estimator_falls_back_to_joblib_with_a_note(store) -> None:
    X, y = data()
    model = ThresholdClassifier(threshold=0.1).fit(X, y)
    saved, loaded = roundtrip(store, model)
    assert saved.metadata["format"] == "joblib"
    assert "ThresholdClassifier" in saved.metadata["note"]
    assert saved.metadata["params"] == {"threshold": 0.1}
    folder = store.local_path(saved.uri, saved.content_hash)
    assert [p.name for p in folder.iterdir()] == [JOBLIB_FILE]
    assert type(loaded) is ThresholdClassifier
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.mean_, model.mean_)


def test_pipeline_holding_an_untrusted_step_falls_back_to_joblib(store) -> None:
    X, y = data()
    model = make_pipeline(StandardScaler(), ThresholdClassifier()).fit(X, y)
    saved, loaded = roundtrip(store, model)
    assert saved.metadata["format"] == "joblib"
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_metadata_without_a_prior_save_finds_the_format_itself() -> None:
    X, y = data()
    assert SklearnMaterializer().extract_metadata(fitted_pipeline())["format"] == "skops"
    custom = ThresholdClassifier().fit(X, y)
    assert SklearnMaterializer().extract_metadata(custom)["format"] == "joblib"


@step
def train_model(C: float = 0.5) -> Annotated[object, "model"]:
    return fitted_pipeline(C)


@step
def predict(model: object) -> Annotated[list, "predictions"]:
    X, _ = data()
    return [int(p) for p in model.predict(X)]


@pipeline
def train_and_predict() -> None:
    predict(train_model())


def test_pipeline_passes_a_fitted_model_between_steps_without_pickle(recwarn) -> None:
    # pytest runs with filterwarnings = error, so a cloudpickle fallback would fail this.
    run = train_and_predict()
    assert run.status == "completed"
    model_output = run.steps["train_model"].outputs["model"]
    assert model_output.materializer == NAME
    X, _ = data()
    assert run.steps["predict"].outputs["predictions"].load() == list(fitted_pipeline().predict(X))
    np.testing.assert_array_equal(model_output.load().predict(X), fitted_pipeline().predict(X))
    assert not [w for w in recwarn if "cloudpickle" in str(w.message)]


def test_without_skops_the_model_is_saved_with_joblib_and_says_so(store, monkeypatch) -> None:
    import builtins

    from sklearn.linear_model import LogisticRegression

    from mlzen.artifacts.materializer import load_artifact, save_artifact

    real_import = builtins.__import__

    def no_skops(name, *args, **kwargs):
        if name.startswith("skops"):
            raise ImportError("No module named 'skops'")
        return real_import(name, *args, **kwargs)

    model = LogisticRegression(C=0.3).fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    monkeypatch.setattr(builtins, "__import__", no_skops)
    saved = save_artifact(store, model, name="model")
    monkeypatch.setattr(builtins, "__import__", real_import)
    assert saved.metadata["format"] == "joblib"
    assert "skops is not installed" in saved.metadata["note"]
    loaded = load_artifact(
        store,
        uri=saved.uri,
        content_hash=saved.content_hash,
        materializer=saved.materializer,
        data_type=saved.data_type,
        name="model",
    )
    assert loaded.predict([[0.5], [2.5]]).tolist() == [0, 1]
