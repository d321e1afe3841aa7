"""The examples run: the quick-start pipeline (what `make demo` runs), and the end-to-end
example twice (promoting and serving only the better model) with its notebook against
those two runs, so none of them can rot. (README.md's and docs/' examples: see
tests/docs_examples.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.services import free_port

EXAMPLE = Path(__file__).parents[1] / "examples" / "end_to_end"


def _run_example(project: Path, *args: str) -> str:
    env = {**os.environ, "MLZEN_PROJECT_ROOT": str(project), "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(
        [sys.executable, str(EXAMPLE / "pipeline.py"), *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture
def two_runs(project: Path) -> Iterator[tuple[str, str, int]]:
    port = free_port()
    first = _run_example(project, "--port", str(port))
    try:
        second = _run_example(project, "--port", str(port), "--C", "0.01")
        yield first, second, port
    finally:
        from mlzen.deployers.deployments import stop_deployment

        stop_deployment("breast-cancer")


def test_end_to_end_example_and_its_notebook(project: Path, two_runs: tuple[str, str, int]) -> None:
    from mlzen import Client

    first, second, port = two_runs
    assert "promoted breast-cancer:1 to production" in first
    assert f"serving breast-cancer:production at http://127.0.0.1:{port}" in first
    # A strongly regularised model is worse: version 2 is recorded, not promoted.
    assert "kept <ModelVersion breast-cancer:1 production>" in second
    assert "keeps serving" in second
    versions = {v.number: v.stage for v in Client().list_model_versions("breast-cancer")}
    assert versions == {1: "production", 2: "none"}

    info = httpx.get(f"http://127.0.0.1:{port}/info", timeout=10).json()
    assert info["model_version"] == 1
    production = Client().get_model_version("breast-cancer", "production")
    model = production.get_artifact("model")
    assert info["content_hash"] == model.content_hash
    raw = Client().get_artifact_version("raw").load()
    rows = raw.drop(columns="target").head(3)
    answer = httpx.post(
        f"http://127.0.0.1:{port}/predict",
        json={"rows": rows.to_dict(orient="records")},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == model.load().predict(rows).tolist()

    # The notebook explores these two runs (one test: the runs take a while).
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(EXAMPLE / "explore.ipynb", as_version=4)
    NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(project)}},
    ).execute()
    outputs = "\n".join(
        str(output.get("text") or output.get("data", {}).get("text/plain", ""))
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )
    assert "logisticregression__C" in outputs  # the hyper-parameter diff of the models
    assert "('preview', 'html')" in outputs
    assert "production" in outputs


def test_quickstart_example_runs(project: Path) -> None:
    example = Path(__file__).parents[1] / "examples" / "quickstart" / "pipeline.py"
    env = {**os.environ, "MLZEN_PROJECT_ROOT": str(project), "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(
        [sys.executable, str(example)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "completed" in result.stdout
    assert "metrics: {'accuracy':" in result.stdout
