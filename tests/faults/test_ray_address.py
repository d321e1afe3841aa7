"""A Ray orchestrator pointed at the wrong address (issue 10, C): stack validation fails
within its connect timeout, naming the address, before any run is recorded, instead of
Ray retrying for minutes with only warnings."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.drivers import driver_env

pytest.importorskip("ray", reason='ray is not installed: pip install "mlzen[ray]"')

RUN_ON_RAY = textwrap.dedent(
    """
    import json, sys
    from mlzen import Client
    from mlzen.config import load_settings
    from mlzen.errors import MlzenError
    from mlzen.orchestrators.ray import RayOrchestrator
    from mlzen.stack import Stack
    from tests import shapes

    orchestrator = RayOrchestrator(address=sys.argv[1])
    stack = Stack(load_settings(), "cluster", orchestrator=orchestrator)
    try:
        Client(stack).run_pipeline(*shapes.chain.build(length=1))
        outcome = ["ran"]
    except MlzenError as exc:
        outcome = [type(exc).__name__, exc.message, exc.fields.get("address")]
    print(json.dumps([*outcome, len(Client(stack).list_pipeline_runs())]))
    """
)


class Listener:
    """A TCP server on 127.0.0.1 that is not Ray: it answers like a web server, or says
    nothing at all."""

    def __init__(self, reply: bytes | None) -> None:
        self.reply = reply
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.socket.getsockname()[1]}"
        self.connections: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self.connections.append(connection)
            if self.reply is not None:
                connection.recv(1024)
                connection.sendall(self.reply)

    def close(self) -> None:
        self.socket.close()
        for connection in self.connections:
            connection.close()


@pytest.fixture(params=["web server", "silent"])
def listener(request: pytest.FixtureRequest) -> Iterator[Listener]:
    reply = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
    server = Listener(reply if request.param == "web server" else None)
    yield server
    server.close()


def _run_on_ray(project: Path, address: str) -> list:
    done = subprocess.run(
        [sys.executable, "-c", RUN_ON_RAY, address],
        cwd=Path(__file__).parents[2],
        env={k: v for k, v in driver_env(project).items() if k != "RAY_ADDRESS"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_something_else_listening_fails_stack_validation(project: Path, listener: Listener) -> None:
    error, message, address, runs = _run_on_ray(project, listener.address)
    assert error == "ConfigError"
    assert address == listener.address
    assert listener.address in message and "address" in message
    assert runs == 0


def test_nothing_listening_fails_stack_validation(project: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    error, message, _, runs = _run_on_ray(project, address)
    assert error == "ConfigError"
    assert address in message and "ray start --head" in message
    assert runs == 0
