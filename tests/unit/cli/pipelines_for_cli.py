"""Pipelines the CLI tests run by module name (mlzen run tests.unit.cli.pipelines_for_cli:X)."""

from __future__ import annotations

from typing import Annotated

from mlzen import pipeline, step

switch = {"fail": False}


@step
def numbers(count: int = 3) -> Annotated[list, "numbers"]:
    print(f"making {count} numbers")
    return list(range(count))


@step
def scale(values: list, factor: float = 1.0) -> Annotated[list, "scaled"]:
    if switch["fail"]:
        raise RuntimeError("scale exploded")
    return [v * factor for v in values]


@step
def summed(values: list) -> Annotated[float, "total"]:
    return float(sum(values))


@pipeline
def arithmetic(count: int = 3, factor: float = 1.0, verbose: bool = False, label: str = "x"):
    summed(scale(numbers(count=count), factor=factor))
