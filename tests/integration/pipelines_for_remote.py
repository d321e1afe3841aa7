"""Pipelines that ``test_remote.py`` runs against a team server.

They live in an importable module so that worker processes and ``mlzen runs resume``
find their steps by ``module:qualname``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

from mlzen import log_metadata, pipeline, step

GATE_ENV = "MLZEN_TEST_GATE"


@step
def make_numbers(count: int, tag: str) -> Annotated[list, "numbers"]:
    log_metadata({"count": count, "tag": tag})
    return list(range(count))


@step
def summarize(numbers: list) -> tuple[Annotated[int, "total"], Annotated[float, "mean"]]:
    log_metadata({"largest": max(numbers)}, artifact_name="total")
    return sum(numbers), sum(numbers) / len(numbers)


@pipeline
def numbers(count: int = 5, tag: str = "") -> None:
    summarize(make_numbers(count=count, tag=tag))


@step
def before_gate(tag: str) -> Annotated[str, "opened"]:
    return f"opened-{tag}"


@step
def gate(opened: str) -> Annotated[str, "passed"]:
    """Says it is waiting, then waits until the test creates the file ``go``."""
    folder = Path(os.environ[GATE_ENV])
    (folder / "waiting").touch()
    deadline = time.monotonic() + 300
    while not (folder / "go").exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"Nobody created {folder / 'go'}.")
        time.sleep(0.05)
    return f"{opened}-passed"


@step
def after_gate(passed: str) -> Annotated[str, "done"]:
    return f"{passed}-done"


@pipeline
def gated(tag: str = "") -> None:
    after_gate(gate(before_gate(tag=tag)))
