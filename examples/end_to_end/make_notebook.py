"""Writes ``explore.ipynb`` from the cells below (so the notebook's source is reviewable).

Run ``python make_notebook.py`` after changing a cell; ``tests/test_examples.py`` runs
the notebook against two real runs of ``pipeline.py`` so it cannot rot.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

CELLS: list[tuple[str, str]] = [
    (
        "markdown",
        """# Exploring runs, artifacts and models

Run `python pipeline.py` and `python pipeline.py --C 0.01` in this folder first: this
notebook reads what those two runs recorded in `.mlzen/`, with the `mlzen.Client`.
Nothing here needs a server.""",
    ),
    (
        "code",
        """import pandas as pd

from mlzen import Client

client = Client()
runs = client.list_pipeline_runs(pipeline="training", limit=10)
assert len(runs) >= 2, "run pipeline.py twice first"
pd.DataFrame(
    [
        {
            "run": run.name,
            "status": run.status,
            "C": run.parameters.get("C"),
            "seconds": round(run.duration or 0.0, 2),
        }
        for run in runs
    ]
)""",
    ),
    ("markdown", "## The steps of the newest run\n\nCached steps point at the run they reused."),
    (
        "code",
        """new, old = runs[0], runs[1]
pd.DataFrame(
    [
        {
            "step": name,
            "status": step_run.status,
            "cached from": step_run.cached_from_id,
            "seconds": round(step_run.duration or 0.0, 3),
        }
        for name, step_run in new.steps.items()
    ]
)""",
    ),
    ("markdown", "## Artifacts load back as the Python objects the steps returned"),
    (
        "code",
        """raw = new.steps["load"].outputs["raw"]
metrics = new.steps["evaluate"].outputs["metrics"].load()
print(raw, "-", raw.metadata.get("rows"), "rows")
print("metrics:", metrics)
raw.load().head()""",
    ),
    (
        "markdown",
        "Each DataFrame carries visualizations stored beside it: an HTML preview and "
        "histograms of its numeric columns.",
    ),
    ("code", "[(visualization.name, visualization.kind) for visualization in raw.visualizations]"),
    ("markdown", "## Lineage: where the model came from and what used it"),
    (
        "code",
        """model = new.steps["train"].outputs["model"]
producer = model.producer
print("made by", producer.name, "from", {k: str(v) for k, v in producer.inputs.items()})
print("used by", [step_run.name for step_run in model.consumers])""",
    ),
    ("markdown", "## Model versions and their stages"),
    (
        "code",
        """pd.DataFrame(
    [
        {
            "version": version.number,
            "stage": version.stage,
            "accuracy": version.metadata.get("accuracy"),
            "run": version.run.name if version.run else None,
        }
        for version in client.list_model_versions("breast-cancer")
    ]
)""",
    ),
    (
        "code",
        """production = client.get_model_version("breast-cancer", "production")
production_model = production.get_artifact("model").load()
features = raw.load().drop(columns="target").head(5)
production_model.predict(features)""",
    ),
    ("markdown", "## What changed between the two runs"),
    (
        "code",
        """diff = client.compare_runs(old, new)
pd.DataFrame([{"parameter": c.name, "old": c.old, "new": c.new} for c in diff.parameters])""",
    ),
    (
        "code",
        """pd.DataFrame(
    [
        {"step": step.step, "key": change.name, "old": change.old, "new": change.new}
        for step in diff.steps
        for change in step.metadata
    ]
)""",
    ),
    (
        "code",
        """model_diff = next(a for a in diff.artifacts if a.output == "model" and a.model)
pd.DataFrame(
    [
        {"hyper-parameter": change.name, "old": change.old, "new": change.new}
        for change in model_diff.model.hyperparameters
    ]
)""",
    ),
]


def build() -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook()
    for kind, source in CELLS:
        make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        notebook.cells.append(make(source))
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return notebook


if __name__ == "__main__":
    target = Path(__file__).with_name("explore.ipynb")
    nbformat.write(build(), target)
    print(f"wrote {target}")
