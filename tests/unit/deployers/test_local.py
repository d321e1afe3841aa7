"""The local deployer's process and port handling, and its flavor in stacks."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlzen.deployers.base import Deployment, DeploymentRequest, ServedModel
from mlzen.deployers.deployments import deployer_for
from mlzen.deployers.local import (
    LocalModelDeployer,
    free_port,
    is_service_process,
    port_is_free,
    service_url,
)
from mlzen.errors import ConfigError, DeploymentError
from mlzen.stack import Stack, load_stack
from mlzen.stack_registry import describe_stack, register_component, register_stack

SERVED = ServedModel(artifact_version_id="a" * 32, artifact_name="model", content_hash="h" * 64)


@pytest.fixture
def lookalike() -> Iterator[subprocess.Popen[bytes]]:
    """A process whose command line reads like deployment 'svc''s service."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; time.sleep(60)",
            "-m",
            "mlzen.deployers.serving",
            "--name",
            "svc",
        ]  # fmt: skip
    )
    # Until the child has exec'd, its command line is still this process's.
    deadline = time.monotonic() + 30
    while not is_service_process(process.pid, "svc") and time.monotonic() < deadline:
        time.sleep(0.01)
    yield process
    process.kill()
    process.wait()


def test_service_process_is_recognised_by_its_command_line(
    lookalike: subprocess.Popen[bytes],
) -> None:
    assert is_service_process(lookalike.pid, "svc")
    assert not is_service_process(lookalike.pid, "other")
    assert not is_service_process(None, "svc")
    lookalike.kill()
    lookalike.wait()
    assert not is_service_process(lookalike.pid, "svc")


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to read command lines")
def test_a_recycled_pid_is_not_taken_for_the_service() -> None:
    import os

    assert not is_service_process(os.getpid(), "svc")


def test_ports() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert not port_is_free("127.0.0.1", port)
    assert port_is_free("127.0.0.1", port)
    assert port_is_free("127.0.0.1", free_port("127.0.0.1"))


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8000"),
        ("0.0.0.0", "http://127.0.0.1:8000"),  # noqa: S104
        ("::", "http://[::1]:8000"),
        ("::1", "http://[::1]:8000"),
        ("localhost", "http://localhost:8000"),
    ],
)
def test_service_url(host: str, url: str) -> None:
    assert service_url(host, 8000) == url


def test_a_busy_port_is_refused_before_anything_starts(project: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        request = DeploymentRequest("svc", SERVED, None, port, "local")
        with pytest.raises(DeploymentError, match=f"Port {port} on 127.0.0.1 is in use"):
            LocalModelDeployer().start(request)
    assert not (project / ".mlzen" / "deployments" / "svc.log").exists()


def test_status_stop_and_logs_of_a_gone_process(project: Path) -> None:
    log = project / ".mlzen" / "deployments" / "svc.log"
    log.parent.mkdir()
    log.write_text("one\ntwo\nthree\n")
    port = free_port("127.0.0.1")
    deployment = Deployment(
        name="svc",
        flavor="local",
        status="running",
        served=SERVED,
        url=service_url("127.0.0.1", port),
        pid=None,
        log_path=str(log),
        config={"host": "127.0.0.1", "port": port},
    )
    deployer = LocalModelDeployer()
    assert deployer.live_status(deployment) == "crashed"
    deployer.stop(deployment)  # nothing to stop; the port is free
    assert deployer.logs(deployment) == "one\ntwo\nthree\n"
    assert deployer.logs(deployment, 2) == "two\nthree\n"
    assert deployer.logs(deployment, 0) == ""
    deployment.status = "stopped"
    assert deployer.live_status(deployment) == "stopped"


@pytest.mark.parametrize("where", ["outside", "other-name", "dotdot", "link"])
def test_logs_are_read_only_from_the_projects_deployments_folder(
    project: Path, tmp_path: Path, where: str
) -> None:
    """A deployment record may come from a team server: its log path is not trusted."""
    secret = tmp_path / "secret.txt"
    secret.write_text("not for you")
    folder = project / ".mlzen" / "deployments"
    folder.mkdir()
    (folder / "other.log").write_text("another deployment's log")
    log_path = {
        "outside": str(secret),
        "other-name": str(folder / "other.log"),
        "dotdot": f"{folder}/../../../{secret.relative_to('/')}",
        "link": str(folder / "svc.log"),
    }[where]
    if where == "link":
        (folder / "svc.log").symlink_to(secret)
    deployment = Deployment(
        name="svc", flavor="local", status="stopped", served=SERVED, url=None, pid=None,
        log_path=log_path, config={},
    )  # fmt: skip
    with pytest.raises(DeploymentError, match="not read") as refused:
        LocalModelDeployer().logs(deployment)
    assert "not for you" not in refused.value.message


def test_a_stack_picks_its_model_deployer(project: Path) -> None:
    register_component(
        "model_deployer",
        "lan",
        "local",
        {"host": "0.0.0.0", "startup_timeout": 5},  # noqa: S104
    )
    register_stack("served", {"orchestrator": "local", "artifact_store": "local",
                              "model_deployer": "lan"})  # fmt: skip
    deployer = deployer_for(load_stack("served"))
    assert isinstance(deployer, LocalModelDeployer)
    assert (deployer.host, deployer.startup_timeout) == ("0.0.0.0", 5.0)  # noqa: S104
    assert describe_stack("served")["components"]["model_deployer"]["name"] == "lan"
    local = describe_stack("local")["components"]["model_deployer"]
    assert (local["name"], local["flavor"]) == ("local", "local")
    from mlzen.config import load_settings

    assert deployer_for(Stack(load_settings())).host == "127.0.0.1"


def test_deployer_options_are_validated(project: Path) -> None:
    with pytest.raises(ConfigError, match="has no option 'workers'"):
        register_component("model_deployer", "bad", "local", {"workers": 2})
    with pytest.raises(ConfigError, match="Invalid option 'startup_timeout'"):
        register_component("model_deployer", "bad", "local", {"startup_timeout": 0})
