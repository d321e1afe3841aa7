"""Redefining a helper a step calls changes the step's fingerprint, so the step reruns
(issue 10, G2): in a real Jupyter kernel, and in one plain Python process."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mlzen import pipeline, step
from mlzen.runtime.fingerprint import code_fingerprint


def _cell(source: str) -> str:
    return textwrap.dedent(source).strip()


NOTEBOOK_CELLS = [
    _cell(
        """
        from mlzen import pipeline, step

        def helper():
            return 1

        @step
        def use() -> int:
            return helper()

        @pipeline
        def p():
            use()

        def show(label):
            result = p().steps["use"]
            print(f"{label}: {result.status} {result.outputs['output'].load()}")

        show("first")
        """
    ),
    _cell(
        """
        def helper():
            return 2

        show("redefined")
        """
    ),
    # Running the same cell again defines an equal helper: the step is a cache hit.
    _cell(
        """
        def helper():
            return 2

        show("same again")
        """
    ),
]


def test_redefining_a_helper_in_a_notebook_reruns_the_step(project: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")

    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(source) for source in NOTEBOOK_CELLS]
    )
    nbclient.NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(project)}},
    ).execute()
    printed = [
        line
        for cell in notebook.cells
        for output in cell.outputs
        if output.get("name") == "stdout"
        for line in output["text"].splitlines()
        if line.startswith(("first:", "redefined:", "same again:"))
    ]
    assert printed == ["first: completed 1", "redefined: completed 2", "same again: cached 2"]


def helper() -> int:
    return 1


@step
def use_helper() -> int:
    return helper()


@pipeline
def helper_pipeline() -> None:
    use_helper()


def test_redefining_a_helper_in_process_reruns_the_step(monkeypatch: pytest.MonkeyPatch) -> None:
    first = helper_pipeline().steps["use_helper"]
    assert (first.status, first.outputs["output"].load()) == ("completed", 1)
    before = code_fingerprint(use_helper)
    original = helper

    def redefined() -> int:
        return 2

    redefined.__qualname__ = redefined.__name__ = "helper"
    monkeypatch.setitem(globals(), "helper", redefined)
    assert code_fingerprint(use_helper) != before
    second = helper_pipeline().steps["use_helper"]
    assert (second.status, second.outputs["output"].load()) == ("completed", 2)

    monkeypatch.setitem(globals(), "helper", original)
    assert code_fingerprint(use_helper) == before
    third = helper_pipeline().steps["use_helper"]
    assert (third.status, third.outputs["output"].load()) == ("cached", 1)
