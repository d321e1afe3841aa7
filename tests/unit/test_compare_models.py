"""Comparing two models: scikit-learn hyper-parameters, PyTorch shapes and weights,
through ``compare``, ``Client.compare_runs`` and ``mlzen diff``."""

from __future__ import annotations

import json
from typing import Annotated, Any

import numpy as np
import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import MinMaxScaler, StandardScaler  # noqa: E402
from torch import nn  # noqa: E402

from mlzen import Client, compare, pipeline, step  # noqa: E402
from mlzen.cli.main import cli  # noqa: E402
from mlzen.comparison import MODEL, OPAQUE  # noqa: E402


@step
def fit(c: float = 1.0, scaler: str = "standard") -> Annotated[Any, "model"]:
    x = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 1.0], [3.0, 0.0]])
    y = np.array([0, 0, 1, 1])
    scale = StandardScaler() if scaler == "standard" else MinMaxScaler()
    return Pipeline([("scale", scale), ("clf", LogisticRegression(C=c))]).fit(x, y)


@pipeline
def sklearn_training(c: float = 1.0, scaler: str = "standard"):
    fit(c=c, scaler=scaler)


class Mlp(nn.Module):
    def __init__(self, hidden: int = 3) -> None:
        super().__init__()
        self.hidden = hidden
        self.fc = nn.Linear(2, hidden)
        self.out = nn.Linear(hidden, 1)


@step
def build(hidden: int = 3, shift: float = 0.0) -> Annotated[nn.Module, "net"]:
    torch.manual_seed(0)
    net = Mlp(hidden)
    with torch.no_grad():
        net.out.bias.add_(shift)
    return net


@pipeline
def torch_training(hidden: int = 3, shift: float = 0.0):
    build(hidden=hidden, shift=shift)


def test_two_sklearn_pipelines_differ_by_their_nested_params() -> None:
    old = sklearn_training(c=1.0).steps["fit"].outputs["model"]
    new = sklearn_training(c=0.5, scaler="minmax").steps["fit"].outputs["model"]
    diff = compare(old, new)
    assert diff.kind == MODEL and not diff.identical
    model = diff.model
    assert model.framework == "sklearn"
    assert model.class_old == model.class_new == "sklearn.pipeline.Pipeline"
    changes = {c.name: (c.change, c.old, c.new) for c in model.hyperparameters}
    assert changes["clf__C"] == ("changed", 1.0, 0.5)
    assert changes["scale"] == (
        "changed",
        "sklearn.preprocessing._data.StandardScaler",
        "sklearn.preprocessing._data.MinMaxScaler",
    )
    assert changes["steps"][0] == "changed"
    assert changes["scale__with_mean"] == ("removed", True, None)
    assert changes["scale__feature_range"] == ("added", None, [0, 1])
    assert "clf__max_iter" not in changes


def test_identical_models_are_not_loaded() -> None:
    old = sklearn_training(c=2.0).steps["fit"].outputs["model"]
    again = sklearn_training(c=2.0)  # a cache hit: the same version
    diff = compare(old, again.steps["fit"].outputs["model"])
    assert diff.kind == MODEL and diff.identical and diff.model is None


def test_torch_modules_differ_by_shapes_and_weights() -> None:
    base = torch_training().steps["build"].outputs["net"]
    shifted = torch_training(shift=0.25).steps["build"].outputs["net"]
    wider = torch_training(hidden=5).steps["build"].outputs["net"]

    weights = compare(base, shifted).model
    assert weights.framework == "torch"
    assert weights.hyperparameters == [] and weights.shape_changes == []
    assert [w.name for w in weights.weights] == ["out.bias"]
    assert weights.max_abs_weight_diff == pytest.approx(0.25)

    shapes = compare(base, wider).model
    assert [(c.name, c.old, c.new) for c in shapes.hyperparameters] == [("hidden", 3, 5)]
    assert (shapes.parameter_count_old, shapes.parameter_count_new) == (13, 21)
    changed = {c.name: (c.old, c.new) for c in shapes.shape_changes}
    assert changed == {
        "fc.weight": ([3, 2], [5, 2]),
        "fc.bias": ([3], [5]),
        "out.weight": ([1, 3], [1, 5]),
    }
    assert shapes.max_abs_weight_diff is not None  # out.bias kept its shape


@step
def pickled() -> Annotated[object, "blob"]:
    return {1, 2}


@step
def pickled_more() -> Annotated[object, "blob"]:
    return {1, 2, 3}


@pipeline
def blobs(more: bool = False):
    pickled_more() if more else pickled()


@pytest.mark.filterwarnings("ignore:mlzen has no materializer for builtins.set:UserWarning")
def test_values_without_a_comparing_materializer_stay_opaque() -> None:
    old = blobs().steps["pickled"].outputs["blob"]
    new = blobs(more=True).steps["pickled_more"].outputs["blob"]
    diff = compare(old, new)
    assert diff.kind == OPAQUE and not diff.identical and diff.model is None


def test_the_model_diff_flows_to_compare_runs_and_mlzen_diff() -> None:
    old = torch_training(hidden=3)
    new = torch_training(hidden=4)
    diff = Client().compare_runs(old.name, new.name)
    (artifact,) = diff.artifacts
    assert artifact.kind == MODEL and artifact.model.parameter_count_new == 17

    runner = CliRunner()
    text = runner.invoke(cli, ["diff", old.name, new.name])
    assert text.exit_code == 0, text.output
    assert "build.net (net:1 → net:2): model" in text.output
    rows = {line.split()[0]: line.split()[1:] for line in text.output.splitlines() if line}
    assert rows["hidden"] == ["3", "4"]
    assert rows["parameter"] == ["count", "13", "17"]
    assert "shape fc.weight" in text.output and "[3, 2]" in text.output

    as_json = runner.invoke(cli, ["diff", old.name, new.name, "--json"])
    model = json.loads(as_json.output)["artifacts"][0]["model"]
    assert model["framework"] == "torch"
    assert model["hyperparameters"] == [{"name": "hidden", "change": "changed", "old": 3, "new": 4}]
    assert {"name": "fc.bias", "change": "changed", "old": [3], "new": [4]} in model[
        "shape_changes"
    ]


def test_mlzen_diff_lists_the_weights_that_moved() -> None:
    old = torch_training(shift=0.0)
    new = torch_training(shift=1.5)
    result = CliRunner().invoke(cli, ["diff", old.name, new.name])
    assert result.exit_code == 0, result.output
    weight_rows = [line.split() for line in result.output.splitlines() if "out.bias" in line]
    assert weight_rows == [["out.bias", "1", "1.5"]]
