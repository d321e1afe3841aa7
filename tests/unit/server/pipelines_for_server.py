"""Small real pipelines whose runs the server tests read back."""

from __future__ import annotations

from typing import Annotated

import pandas as pd

from mlzen import Model, log_metadata, pipeline, step


@step
def load(rows: int = 30) -> Annotated[pd.DataFrame, "raw"]:
    print(f"loading {rows} rows")
    return pd.DataFrame({"x": range(rows), "y": [i * 2.5 for i in range(rows)]})


@step
def split(
    df: pd.DataFrame, test_size: float = 0.2
) -> tuple[Annotated[pd.DataFrame, "train"], Annotated[pd.DataFrame, "test"]]:
    cut = int(len(df) * (1 - test_size))
    return df.iloc[:cut], df.iloc[cut:]


@step
def train(train: pd.DataFrame, C: float = 1.0) -> Annotated[dict, "model"]:
    log_metadata({"C": C})
    return {"slope": float(train["y"].sum() / max(train["x"].sum(), 1)) * C}


@step
def evaluate(model: dict, test: pd.DataFrame) -> Annotated[float, "score"]:
    print("score computed")
    return float(model["slope"] * len(test))


@pipeline
def training(rows: int = 30, test_size: float = 0.2, C: float = 1.0) -> None:
    train_df, test_df = split(load(rows=rows), test_size=test_size)
    model = train(train_df, C=C)
    evaluate(model, test_df)


@pipeline(model=Model("churn", description="predicts churn"))
def churn_training(C: float = 1.0) -> None:
    train(split(load(rows=10))[0], C=C)


UNPICKLED_MARKER = "unpickled.marker"


def _mark_unpickled(folder: str, value: int) -> Booby:
    """Runs when a pickled ``Booby`` is loaded: leaves a marker file behind."""
    with open(f"{folder}/{UNPICKLED_MARKER}", "a") as marker:
        marker.write(f"{value}\n")
    return Booby(folder, value)


class Booby:
    """A value only pickle can store, whose loading is visible (it writes a file)."""

    def __init__(self, folder: str, value: int) -> None:
        self.folder = folder
        self.value = value

    def __reduce__(self) -> tuple[object, tuple[str, int]]:
        return _mark_unpickled, (self.folder, self.value)


@step
def make_booby(folder: str, value: int = 1) -> Annotated[Booby, "booby"]:
    return Booby(folder, value)


@pipeline
def booby_pipeline(folder: str, value: int = 1) -> None:
    make_booby(folder=folder, value=value)
