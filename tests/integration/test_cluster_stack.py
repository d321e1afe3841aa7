"""The promise of stacks, end to end and from the shell: a pipeline run on the local
stack runs unchanged on a cluster stack (Ray head process + S3 on moto + PostgreSQL)
after `mlzen stack set cluster`; outputs have identical content hashes, and a cached
rerun on the cluster does no step work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.integration.services import s3_client, start_moto, stop

FLOW = textwrap.dedent(
    """
    from typing import Annotated

    import numpy as np
    import pandas as pd

    from mlzen import pipeline, step


    @step
    def load(rows: int = 200) -> Annotated[pd.DataFrame, "raw"]:
        rng = np.random.default_rng(7)
        return pd.DataFrame({"x": rng.normal(size=rows), "y": rng.integers(0, 2, rows)})


    @step
    def split(df: pd.DataFrame) -> tuple[
        Annotated[pd.DataFrame, "train"], Annotated[pd.DataFrame, "test"]
    ]:
        return df.iloc[:150], df.iloc[150:]


    @step
    def train(train: pd.DataFrame) -> Annotated[np.ndarray, "weights"]:
        return np.array([train["x"].mean(), train["y"].mean()])


    @step
    def evaluate(weights: np.ndarray, test: pd.DataFrame) -> Annotated[dict, "metrics"]:
        return {"error": float(abs(test["x"].mean() - weights[0]))}


    @pipeline
    def training(rows: int = 200):
        train_df, test_df = split(load(rows=rows))
        evaluate(train(train_df), test_df)
    """
)


def mlzen(project: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "mlzen", *args],
        cwd=project,
        env={**os.environ, "MLZEN_PROJECT_ROOT": str(project), **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"mlzen {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def hashes(project: Path, stack: str) -> dict[str, dict[str, str]]:
    shown = json.loads(
        mlzen(project, "runs", "show", "latest", "--json", env={"MLZEN_STACK": stack})
    )
    return {
        step["step"]: {
            name: json.loads(
                mlzen(project, "artifacts", "show", ref, "--json", env={"MLZEN_STACK": stack})
            )["content_hash"]
            for name, ref in step["outputs"].items()
        }
        | {"_status": step["status"]}
        for step in shown["steps"]
    }


def test_same_pipeline_on_local_then_cluster_stack(
    project: Path, ray_cluster: str, postgres_url: str, tmp_path: Path
) -> None:
    os.environ.pop("MLZEN_STORE_URL", None)  # the project's registry stays in SQLite
    server, endpoint = start_moto(tmp_path / "moto.log")
    try:
        s3_client(endpoint).create_bucket(Bucket="cluster-artifacts")
        (project / "flow.py").write_text(FLOW)
        mlzen(project, "init")
        mlzen(project, "run", "flow.py:training")
        local = hashes(project, "local")
        assert {step["_status"] for step in local.values()} == {"completed"}

        # Credentials only as encrypted secrets, referenced from the component config.
        mlzen(project, "secret", "set", "s3", "key=testing", "secret=testing")
        mlzen(
            project,
            "component",
            "register",
            "orchestrator",
            "ray",
            "--flavor",
            "ray",
            "--address",
            ray_cluster,
        )
        mlzen(
            project,
            "component",
            "register",
            "artifact_store",
            "s3",
            "--flavor",
            "s3",
            "--path",
            "s3://cluster-artifacts/mlzen",
            "--endpoint-url",
            endpoint,
            "--region",
            "us-east-1",
            "--key",
            "{{ secrets.s3.key }}",
            "--secret",
            "{{ secrets.s3.secret }}",
        )
        mlzen(
            project,
            "component",
            "register",
            "metadata_store",
            "pg",
            "--flavor",
            "sql",
            "--url",
            postgres_url,
        )
        mlzen(project, "stack", "register", "cluster", "-o", "ray", "-a", "s3", "-m", "pg")
        mlzen(project, "stack", "set", "cluster")

        mlzen(project, "run", "flow.py:training")  # the very same command
        cluster = hashes(project, "cluster")
        assert cluster == local  # identical content, step by step, output by output

        mlzen(project, "run", "flow.py:training")
        rerun = hashes(project, "cluster")
        assert {step["_status"] for step in rerun.values()} == {"cached"}

        # The cluster run really used the cluster's components.
        runs = json.loads(mlzen(project, "runs", "list", "--json"))
        assert [r["stack"] for r in runs] == ["cluster", "cluster"]
        local_runs = json.loads(
            mlzen(project, "runs", "list", "--json", env={"MLZEN_STACK": "local"})
        )
        assert [r["stack"] for r in local_runs] == ["local"]
        listed = s3_client(endpoint).list_objects_v2(Bucket="cluster-artifacts", Prefix="mlzen/")
        assert listed["KeyCount"] > 0
        database = (project / ".mlzen" / "mlzen.db").read_bytes()
        assert b"testing" not in database
    finally:
        stop(server)
