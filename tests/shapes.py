"""Named DAG shapes shared by the orchestrator tests (fan-out/fan-in, diamond, ...).

Steps live at module level so worker processes can import them.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Annotated

from mlzen import pipeline, step


@step
def source(value: int = 1) -> int:
    return value


@step
def add(x: int, y: int) -> int:
    return x + y


@step
def increment(x: int) -> int:
    return x + 1


@step
def slow_increment(x: int, seconds: float = 0.3) -> int:
    time.sleep(seconds)
    return x + 1


@step(enable_cache=False)
def meet(x: int, folder: str, parties: int = 4, timeout: float = 120.0) -> int:
    """Wait until ``parties`` invocations are inside this step at once, then add one.

    Proves branches run concurrently without comparing timestamps: run one after the
    other, the first would wait for the rest until ``timeout`` and fail.
    """
    Path(folder, uuid.uuid4().hex).touch()
    deadline = time.monotonic() + timeout
    while (arrived := len(os.listdir(folder))) < parties:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {arrived} of {parties} branches ran at the same time")
        time.sleep(0.01)
    return x + 1


@step
def pid_of(x: int) -> Annotated[int, "pid"]:
    return os.getpid()


@step
def total(a: int, b: int, c: int, d: int) -> int:
    return a + b + c + d


@step
def boom(x: int) -> int:
    raise ValueError(f"boom at {x}")


@pipeline
def chain(length: int = 5) -> None:
    value = source()
    for _ in range(length):
        value = increment(value)


@pipeline
def fan_out_meeting(folder: str) -> None:
    """Four branches that can only finish if all four run at the same time."""
    start = source()
    total(*[meet(start, folder=folder) for _ in range(4)])


@pipeline
def diamond() -> None:
    top = source(value=10)
    left = increment(top)
    right = increment(top)
    add(left, right)


@pipeline
def crossed() -> None:
    a = source(value=1)
    b = source(value=2)
    add(a, b)
    add(b, a)


@pipeline
def failing_middle(seconds: float = 0.3) -> None:
    start = source()
    slow_increment(start, seconds=seconds)
    broken = boom(start)
    increment(broken)


@pipeline
def process_ids() -> None:
    start = source()
    pid_of(start)
    pid_of(start)
