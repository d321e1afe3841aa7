"""Real services the integration tests start on 127.0.0.1: a Ray head, a moto S3 server.

Each runs as a separate process and is stopped by pid; the fixtures that start them once
per session live in ``conftest.py``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

MOTO_SERVER = Path(sys.executable).with_name("moto_server")
REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ray_command() -> str:
    beside = Path(sys.executable).with_name("ray")
    return str(beside) if beside.exists() else (shutil.which("ray") or "ray")


def stop_process_group(leader: int) -> None:
    """End every process of the group ``ray start`` led, and the workers they started."""
    import psutil

    members = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == leader:
                members.append(process)
        except (ProcessLookupError, psutil.Error):
            continue
    doomed = {p.pid: p for p in members}
    for process in members:
        try:
            doomed.update({c.pid: c for c in process.children(recursive=True)})
        except psutil.Error:
            continue
    for process in doomed.values():
        try:
            process.terminate()
        except psutil.Error:
            continue
    _, alive = psutil.wait_procs(list(doomed.values()), timeout=2)
    for process in alive:
        try:
            process.kill()
        except psutil.Error:
            continue
    psutil.wait_procs(alive, timeout=5)


def start_moto(log: Path, **env: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``moto_server`` on a free port of 127.0.0.1; return it once it answers."""
    if not MOTO_SERVER.exists():
        pytest.skip(f"{MOTO_SERVER} is missing: pip install 'moto[server]'")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with log.open("wb") as output:
        server = subprocess.Popen(
            [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )
    deadline = time.monotonic() + 30
    while True:
        try:
            # Moto's own API: not an S3 action, so it does not use up unauthenticated ones.
            with urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=1):
                return server, endpoint
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                stop(server)
                pytest.fail(f"moto_server did not start:\n{log.read_text()}")
            time.sleep(0.1)


def stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        os.kill(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(server.pid, signal.SIGKILL)
            server.wait()


def s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name=REGION, **CREDENTIALS)
