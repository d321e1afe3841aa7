"""An end-to-end training pipeline: load → validate → split → train → evaluate →
promote if better than production → deploy.

Run it from this folder::

    python pipeline.py                 # train with C=1.0, promote, serve on port 8300
    python pipeline.py --C 0.01        # another hyper-parameter; promoted only if better
    mlzen diff <first run> <second run>

Everything lands in ``.mlzen/`` of the current folder. The data is scikit-learn's bundled
breast-cancer set, so nothing is downloaded.
"""

from __future__ import annotations

import argparse
from typing import Annotated, Any

import pandas as pd

from mlzen import Client, Model, get_step_context, log_metadata, pipeline, step
from mlzen.errors import NotFoundError

MODEL_NAME = "breast-cancer"


@step
def load() -> Annotated[pd.DataFrame, "raw"]:
    """The breast-cancer data set scikit-learn ships, as one DataFrame with ``target``."""
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(as_frame=True).frame


@step
def validate(df: pd.DataFrame, min_rows: int = 100) -> Annotated[pd.DataFrame, "validated"]:
    """Refuse data a model should not be trained on, naming what is wrong."""
    problems = []
    if len(df) < min_rows:
        problems.append(f"only {len(df)} rows (at least {min_rows} needed)")
    if "target" not in df.columns:
        problems.append("no 'target' column")
    elif set(df["target"].unique()) - {0, 1}:
        problems.append(f"target has values other than 0/1: {sorted(df['target'].unique())}")
    missing = df.columns[df.isna().any()].tolist()
    if missing:
        problems.append(f"missing values in {missing}")
    not_numeric = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    if not_numeric:
        problems.append(f"non-numeric columns {not_numeric}")
    if problems:
        raise ValueError("The data failed validation: " + "; ".join(problems))
    log_metadata({"rows": len(df), "columns": len(df.columns) - 1})
    return df


@step
def split(
    df: pd.DataFrame, test_size: float = 0.25, seed: int = 0
) -> tuple[Annotated[pd.DataFrame, "train"], Annotated[pd.DataFrame, "test"]]:
    """A stratified train/test split."""
    from sklearn.model_selection import train_test_split

    return tuple(
        train_test_split(df, test_size=test_size, random_state=seed, stratify=df["target"])
    )


@step
def train(train: pd.DataFrame, C: float = 1.0) -> Annotated[Any, "model"]:
    """Standard scaling and a logistic regression with inverse regularisation ``C``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=1000))
    model.fit(train.drop(columns="target"), train["target"])
    return model


@step
def evaluate(model: Any, test: pd.DataFrame) -> Annotated[dict, "metrics"]:
    """Accuracy and ROC AUC on the held-out data, also recorded on the model version."""
    from sklearn.metrics import roc_auc_score

    features, target = test.drop(columns="target"), test["target"]
    metrics = {
        "accuracy": float(model.score(features, target)),
        "roc_auc": float(roc_auc_score(target, model.predict_proba(features)[:, 1])),
    }
    log_metadata(metrics)  # on the step run
    log_metadata(metrics, model=True)  # on the model version this run creates
    print(f"accuracy {metrics['accuracy']:.4f}, ROC AUC {metrics['roc_auc']:.4f}")
    return metrics


@step(enable_cache=False)
def promote_if_better(metrics: dict, metric: str = "accuracy") -> Annotated[bool, "promoted"]:
    """Promote this run's model version to production if it beats the production one.

    Never cached: the answer depends on what holds production now.
    """
    version = get_step_context().model_version
    if version is None:
        raise RuntimeError("promote_if_better needs the pipeline to have model=Model(...).")
    client = Client()
    try:
        production = client.get_model_version(version.model_name, "production")
    except NotFoundError:
        production = None
    score = metrics[metric]
    best = production.metadata.get(metric) if production is not None else None
    if best is not None and score <= best:
        print(f"kept {production}: its {metric} {best:.4f} >= {score:.4f}")
        return False
    client.get_model_version(version.id).promote("production", force=True)
    beaten = f" > {best:.4f} of {production}" if best is not None else ", no production yet"
    print(f"promoted {version} to production ({metric} {score:.4f}{beaten})")
    return True


@step(enable_cache=False)
def deploy(promoted: bool, port: int | None = None) -> Annotated[dict, "deployment"]:
    """Serve the production version over HTTP; redeploy only when production changed."""
    from mlzen.deployers.deployments import deploy as start_service
    from mlzen.deployers.deployments import get_deployment

    name = MODEL_NAME
    if not promoted:
        try:
            current = get_deployment(name)
        except NotFoundError:
            current = None
        if current is not None and current.status == "running":
            print(f"production unchanged; {name} keeps serving at {current.url}")
            return {"name": name, "url": current.url, "redeployed": False}
    deployment = start_service(f"{MODEL_NAME}:production", name=name, port=port)
    print(f"serving {MODEL_NAME}:production at {deployment.url}")
    return {"name": name, "url": deployment.url, "redeployed": True}


@pipeline(model=Model(name=MODEL_NAME))
def training(C: float = 1.0, test_size: float = 0.25, port: int | None = 8300) -> None:
    train_df, test_df = split(validate(load()), test_size=test_size)
    model = train(train_df, C=C)
    promoted = promote_if_better(evaluate(model, test_df))
    deploy(promoted, port=port)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--C", type=float, default=1.0, help="inverse regularisation")
    parser.add_argument("--port", type=int, default=8300, help="port of the served model")
    args = parser.parse_args(argv)
    run = training(C=args.C, port=args.port)
    metrics = run.steps["evaluate"].outputs["metrics"].load()
    version = Client().get_model_version(MODEL_NAME, "latest")
    print(f"run {run.name}: {run.status}; {version} is {version.stage}; metrics {metrics}")
    print(f"stop the service with: mlzen deployments stop {MODEL_NAME}")


if __name__ == "__main__":
    main()
