"""Checking a Ray address before a run: real listeners on 127.0.0.1, no Ray needed."""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Iterator

import pytest

from mlzen.config import load_settings
from mlzen.errors import ConfigError
from mlzen.orchestrators.ray import RayOrchestrator, check_address
from mlzen.stack import Stack

HTTP2_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


@pytest.fixture
def listening() -> Iterator[callable]:
    """Start TCP servers on 127.0.0.1 that answer each connection with given bytes
    (``None``: read and never answer); they stop after the test."""
    servers: list[socket.socket] = []
    connections: list[socket.socket] = []

    def start(reply: bytes | None) -> str:
        server = socket.create_server(("127.0.0.1", 0))
        servers.append(server)

        def serve() -> None:
            while True:
                try:
                    connection, _ = server.accept()
                except OSError:
                    return
                connections.append(connection)
                connection.recv(1024)
                if reply is not None:
                    connection.sendall(reply)

        threading.Thread(target=serve, daemon=True).start()
        return f"127.0.0.1:{server.getsockname()[1]}"

    yield start
    for sock in servers + connections:
        sock.close()


def test_a_grpc_server_passes(listening) -> None:
    check_address(listening(HTTP2_SETTINGS), timeout=5)
    check_address("ray://" + listening(HTTP2_SETTINGS), timeout=5)


def test_a_web_server_is_not_a_ray_cluster(listening) -> None:
    address = listening(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    with pytest.raises(ConfigError) as refused:
        check_address(address, timeout=5)
    assert refused.value.address == address
    assert f"Something listens at {address}, but it is not a Ray cluster" in str(refused.value)


def test_a_silent_listener_times_out(listening) -> None:
    address = listening(None)
    with pytest.raises(ConfigError, match=rf"{address} did not answer within 0.5s"):
        check_address(address, timeout=0.5)


def test_nothing_listening_is_a_clear_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    with pytest.raises(ConfigError, match=rf"Cannot connect to the Ray cluster at {address}"):
        check_address(address, timeout=5)


def test_stack_validation_names_the_stack_and_the_address(
    listening, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A process already connected to Ray (an earlier test's) leaves the check to Ray.
    monkeypatch.delitem(sys.modules, "ray", raising=False)
    address = listening(b"nope")
    orchestrator = RayOrchestrator(address=address, connect_timeout=5)
    stack = Stack(
        load_settings(), "cluster", orchestrator=orchestrator, components={"orchestrator": "ray"}
    )
    with pytest.raises(ConfigError) as refused:
        stack.validate()
    assert str(refused.value).startswith("Stack 'cluster', orchestrator 'ray': ")
    assert refused.value.address == address and refused.value.component == "ray"


@pytest.mark.parametrize("address", [None, "auto"])
def test_no_address_to_check(address: str | None) -> None:
    RayOrchestrator(address=address).check()  # a local cluster, or the one Ray finds
