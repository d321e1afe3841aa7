"""Pipelines the bad-input faults run (importable by ``module:name``)."""

from __future__ import annotations

from typing import Annotated, Any

from mlzen import log_metadata, pipeline, step


@step
def load(rows: int = 3) -> Annotated[list, "raw"]:
    return list(range(rows))


@step
def scale(data: list, factor: float = 1.0) -> Annotated[float, "total"]:
    log_metadata({"factor": factor, "inf": float("inf")})
    return sum(data) * factor  # nan * 0 stays nan: a non-finite output and its metadata


@step
def keep(blob: Any = None) -> Annotated[int, "kept"]:
    return len(str(blob))


@pipeline
def training(rows: int = 3, factor: float = 1.0, blob: Any = None):
    scale(load(rows=rows), factor=factor)
    keep(blob=blob)
