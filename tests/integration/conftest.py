"""Session-wide real services for the integration tests (see ``services.py``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

import pytest

from tests.integration.services import free_port, ray_command, stop_process_group


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    """The address of a Ray head started for this session in its own process group."""
    pytest.importorskip("ray", reason='ray is not installed: pip install "mlzen[ray]"')
    import ray

    port = free_port()
    temp_dir = tempfile.mkdtemp(prefix="mlzen-ray-", dir="/tmp")  # short: socket paths
    command = [
        ray_command(),
        "start",
        "--head",
        "--node-ip-address=127.0.0.1",
        f"--port={port}",
        "--num-cpus=2",
        "--include-dashboard=false",
        "--disable-usage-stats",
        f"--temp-dir={temp_dir}",
        # Fixed default ports would collide with any other Ray on this machine.
        f"--dashboard-port={free_port()}",
        f"--dashboard-agent-listen-port={free_port()}",
    ]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    # `ray start` switches token authentication on by itself when ~/.ray/auth_token
    # exists, while a driver given an explicit address does not: say it for both.
    env["RAY_AUTH_MODE"] = "disabled"
    starter = subprocess.Popen(
        command,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        output, _ = starter.communicate(timeout=120)
        if starter.returncode != 0:
            pytest.fail(f"`ray start --head` failed ({starter.returncode}):\n{output}")
        yield f"127.0.0.1:{port}"
    finally:
        if ray.is_initialized():
            ray.shutdown()
        if starter.poll() is None:
            starter.kill()
        stop_process_group(starter.pid)
        shutil.rmtree(temp_dir, ignore_errors=True)
