"""Which input a model takes (declared, feature names + lineage, feature counts) and
calling it with checked rows."""

from __future__ import annotations

from typing import Annotated

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from mlzen import Client, Model, pipeline, step
from mlzen.deployers.predictor import PredictionError, Predictor, framework_of, infer_schema
from mlzen.errors import ConfigError


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "tenure": [1, 30, 5, 50, 2, 40],
            "charges": [90.0, 40.0, None, 30.0, 95.0, 20.0],
            "plan": ["a", "b", "a", "b", "a", "b"],
            "churned": [1, 0, 1, 0, 1, 0],
        }
    )


@step
def customers() -> Annotated[pd.DataFrame, "customers"]:
    return frame()


@step
def fit(customers: pd.DataFrame) -> Annotated[object, "model"]:
    features = customers[["tenure", "plan"]]
    encode = make_column_transformer((OneHotEncoder(), ["plan"]), remainder="passthrough")
    return make_pipeline(encode, LogisticRegression()).fit(features, customers["churned"])


@pipeline(model=Model(name="churn"))
def training() -> None:
    fit(customers())


def test_feature_names_typed_from_the_training_input() -> None:
    training()
    artifact = Client().get_model_version("churn", 1).get_artifact("model")
    model = artifact.load()
    schema = infer_schema(model, artifact)
    assert schema.named
    string_dtype = str(frame()["plan"].dtype)  # object, or str with pandas 3
    assert [(c.name, c.kind, c.dtype) for c in schema.columns] == [
        ("tenure", "integer", "int64"),
        ("plan", "string", string_dtype),
    ]
    assert schema.source == (
        "feature_names_in_ of the model, types from the training input 'customers' (customers:1)"
    )
    predictor = Predictor(model, schema)
    assert predictor.framework == "sklearn"
    rows = [[3, "a"], [45, "b"]]
    expected = model.predict(pd.DataFrame(rows, columns=["tenure", "plan"])).tolist()
    assert predictor.predict(rows) == expected
    with pytest.raises(PredictionError, match="Found unknown categories"):
        predictor.predict([[3, "z"]])


def test_declared_columns_win() -> None:
    model = LinearRegression().fit(frame()[["tenure"]], frame()["churned"])
    schema = infer_schema(model, None, {"input_schema": {"tenure": "float64"}})
    assert schema.source == "'input_schema' in the model version's metadata"
    assert [(c.name, c.kind) for c in schema.columns] == [("tenure", "number")]


def test_feature_names_without_lineage_have_unknown_types() -> None:
    data = frame().dropna()
    model = LinearRegression().fit(data[["tenure", "charges"]], data["churned"])
    schema = infer_schema(model)
    assert schema.names == ["tenure", "charges"]
    assert schema.source == "feature_names_in_ of the model, types unknown"
    assert {c.kind for c in schema.columns} == {"any"}
    # Values are cast to nothing, so the model gets what JSON gave.
    assert Predictor(model, schema).predict([[3, 80.0]]) == pytest.approx(
        model.predict(pd.DataFrame([[3, 80.0]], columns=["tenure", "charges"])).tolist()
    )


def test_array_trained_model_takes_positional_numbers() -> None:
    model = LinearRegression().fit(np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]]), [1, 2, 4])
    schema = infer_schema(model)
    assert not schema.named
    assert schema.names == ["x0", "x1"]
    assert "n_features_in_ = 2" in schema.source
    predictor = Predictor(model, schema)
    assert predictor.predict([[1, 1]]) == pytest.approx(model.predict([[1.0, 1.0]]).tolist())


def test_integer_column_with_nulls_is_cast_to_float() -> None:
    from mlzen.deployers.schema import Column, InputSchema

    model = LinearRegression().fit(pd.DataFrame({"a": [1.0, 2.0, 3.0]}), [2, 4, 6])
    schema = InputSchema((Column("a", "integer", "int64", nullable=True),), True, "t")
    with pytest.raises(PredictionError, match="NaN"):
        Predictor(model, schema).predict([[None]])
    assert Predictor(model, schema).predict([[2]]) == pytest.approx([4.0])


def test_torch_module() -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 2), torch.nn.Softmax(dim=1))
    schema = infer_schema(model)
    assert schema.names == ["x0", "x1", "x2", "x3"]
    predictor = Predictor(model, schema)
    assert predictor.framework == "torch"
    rows = [[0.1, 0.2, 0.3, 0.4]]
    with torch.no_grad():
        expected = model(torch.tensor(rows)).tolist()
    assert predictor.predict(rows)[0] == pytest.approx(expected[0])
    with pytest.raises(PredictionError, match="RuntimeError"):
        predictor.predict([[1.0, 2.0]])


def test_objects_that_cannot_predict_are_refused() -> None:
    assert framework_of(LinearRegression()) == "sklearn"

    class Rule:
        def predict(self, rows: object) -> list[int]:
            return [1]

    assert framework_of(Rule()) == "python"
    with pytest.raises(ConfigError, match="builtins.dict, which cannot predict"):
        framework_of({"weights": 1})
