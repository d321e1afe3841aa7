"""The quick-start pipeline: load a bundled dataset, split it, train, evaluate.

Run it with ``python examples/quickstart/pipeline.py`` (or ``make demo``). Everything it
records lands in ``.mlzen/`` of the current folder: no server, no set-up.
"""

from __future__ import annotations

from typing import Annotated

import pandas as pd

from mlzen import Client, get_step_context, log_metadata, pipeline, step


@step
def load(rows: int = 1000) -> Annotated[pd.DataFrame, "raw"]:
    """The breast-cancer dataset that scikit-learn ships, as a DataFrame."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    return frame.head(rows)


@step
def split(
    df: pd.DataFrame, test_size: float = 0.2
) -> tuple[Annotated[pd.DataFrame, "train"], Annotated[pd.DataFrame, "test"]]:
    """Shuffle and split into train and test frames."""
    shuffled = df.sample(frac=1.0, random_state=0)
    cut = int(len(shuffled) * (1 - test_size))
    return shuffled.iloc[:cut], shuffled.iloc[cut:]


@step(retries=2)
def train(train: pd.DataFrame, C: float = 1.0) -> Annotated[object, "model"]:
    """A logistic regression on every feature column."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    log_metadata({"C": C, "train_rows": len(train)})
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=500))
    model.fit(train.drop(columns="target"), train["target"])
    return model


@step
def evaluate(model: object, test: pd.DataFrame) -> Annotated[dict, "metrics"]:
    """Accuracy on the held-out frame, also logged as metadata of the output."""
    accuracy = float(model.score(test.drop(columns="target"), test["target"]))
    get_step_context().add_output_metadata("metrics", {"accuracy": accuracy})
    print(f"accuracy = {accuracy:.3f}")
    return {"accuracy": accuracy, "test_rows": len(test)}


@pipeline
def training(test_size: float = 0.2, C: float = 1.0) -> None:
    train_df, test_df = split(load(), test_size=test_size)
    model = train(train_df, C=C)
    evaluate(model, test_df)


def main() -> None:
    run = training(C=0.5)
    metrics = run.steps["evaluate"].outputs["metrics"].load()
    raw = Client().get_artifact_version("raw")
    print(f"run {run.name}: {run.status} in {run.duration:.2f}s")
    for step_id, step_run in run.steps.items():
        print(f"  {step_id:<10} {step_run.status:<10} {step_run.duration or 0:.3f}s")
    print(f"metrics: {metrics}")
    print(f"raw data: version {raw.version}, {raw.metadata.get('rows')} rows, {raw.uri}")
    print(f"results are in {Client().stack.settings.project_dir}")


if __name__ == "__main__":
    main()
