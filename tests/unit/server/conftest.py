"""A real mlzen server on 127.0.0.1 (uvicorn in a thread), on SQLite and PostgreSQL.

Each test gets its own project and store, three users (admin, editor, viewer) with an
API key each, and HTTP clients over real sockets.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlzen.server import auth
from mlzen.server.app import create_app

PASSWORDS = {"admin": "admin-password", "editor": "editor-password", "viewer": "viewer-password"}


@dataclass
class LiveServer:
    """A running server: its URL, app, and one API key per role."""

    url: str
    app: Any
    keys: dict[str, str]
    log: list[str] = field(default_factory=list)

    def client(self, role: str | None = None) -> httpx.Client:
        """An HTTP client sending ``role``'s API key (none for ``None``)."""
        headers = {"Authorization": f"Bearer {self.keys[role]}"} if role else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def get(self, path: str, role: str | None = "viewer", **kwargs: Any) -> httpx.Response:
        with self.client(role) as client:
            return client.get(path, **kwargs)


class _Thread(threading.Thread):
    def __init__(self, server: Any) -> None:
        super().__init__(daemon=True)
        self.server = server

    def run(self) -> None:
        self.server.run()


@pytest.fixture
def backend(store_backend: str) -> str:
    """Server tests run on SQLite and on PostgreSQL."""
    return store_backend


def start_server(app: Any) -> tuple[Any, _Thread, str]:
    """Serve ``app`` with uvicorn on a free port of 127.0.0.1; returns server, thread, URL."""
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = _Thread(server)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, thread, f"http://127.0.0.1:{port}"


def stop_server(server: Any, thread: _Thread) -> None:
    server.should_exit = True
    thread.join(timeout=30)
    assert not thread.is_alive(), "uvicorn did not stop"


@pytest.fixture
def live(backend: str, project: Path) -> Iterator[LiveServer]:
    """A running server over this test's project, with a user and key per role."""
    app = create_app()
    store = app.state.store
    keys = {}
    for role, password in PASSWORDS.items():
        auth.create_user(store, role, password, role)
        keys[role] = auth.create_api_key(store, role, f"{role}-key")
    server, thread, url = start_server(app)
    try:
        yield LiveServer(url=url, app=app, keys=keys)
    finally:
        stop_server(server, thread)
