"""A step that SIGKILLs its own worker process (importable by worker processes)."""

from __future__ import annotations

import os
import signal

from mlzen import pipeline, step


@step(enable_cache=False)
def first_value() -> int:
    return 41


@step(enable_cache=False)
def kill_self(x: int) -> int:
    os.kill(os.getpid(), signal.SIGKILL)
    return x


@pipeline
def killed() -> None:
    kill_self(first_value())
