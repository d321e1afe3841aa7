"""Real driver processes for the run-lifecycle fault tests: start, signal, wait on the store.

A driver is ``python SCRIPT`` or ``mlzen run ...`` in a session of its own, with a short
heartbeat and lease so crashes show up quickly. Tests wait on conditions (a file a step
writes, a status in the store, a process gone) with a deadline, never on fixed sleeps.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import psutil

T = TypeVar("T")

MLZEN = str(Path(sys.executable).with_name("mlzen"))
DEADLINE = 120.0


def driver_env(project: Path, **settings: str) -> dict[str, str]:
    """The environment of a driver recording in ``project``, with ``MLZEN_<KEY>`` settings."""
    env = {
        **os.environ,
        "MLZEN_PROJECT_ROOT": str(project),
        "MLZEN_HEARTBEAT_INTERVAL": "0.2",
        "MLZEN_LEASE_SECONDS": "2",
    }
    env.update({f"MLZEN_{key.upper()}": value for key, value in settings.items()})
    return env


@contextmanager
def driver(
    command: list[str], project: Path, env: dict[str, str]
) -> Iterator[subprocess.Popen[str]]:
    """A driver process in its own session; whatever is left of the session is killed
    on leaving (the driver, its workers), so a failing test leaves nothing behind."""
    process = subprocess.Popen(
        command,
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        for member in session_members(process.pid):
            try:
                member.kill()
            except psutil.Error:
                continue
        if process.poll() is None:
            process.kill()
        process.communicate()


def session_members(session: int) -> list[psutil.Process]:
    """The live processes of a session (a driver started by :func:`driver` leads one)."""
    members = []
    for candidate in psutil.process_iter():
        try:
            if os.getsid(candidate.pid) == session and alive(candidate.pid):
                members.append(candidate)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return members


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie waiting to be reaped."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_for(condition: Callable[[], T], what: str, timeout: float = DEADLINE) -> T:
    """The first truthy value of ``condition()``, polled until ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def wait_for_file(path: Path, timeout: float = DEADLINE) -> str:
    """The content of ``path`` once a step has written it (a step writes something)."""
    return wait_for(lambda: path.exists() and path.read_text(), f"{path.name}", timeout)


def finish(process: subprocess.Popen[str], timeout: float = DEADLINE) -> tuple[int, str]:
    """Wait for the driver to exit: its return code and stderr."""
    _, stderr = process.communicate(timeout=timeout)
    return process.returncode, stderr


def sigkill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
