"""A real mlzen server on 127.0.0.1 (uvicorn in a thread), on SQLite and PostgreSQL.

Each test gets its own project and store, three users (admin, editor, viewer) with an
API key each, and HTTP clients over real sockets.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlzen.server import auth
from mlzen.server.app import create_app
from tests.live_server import start_server, stop_server

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


@pytest.fixture
def backend(store_backend: str) -> str:
    """Server tests run on SQLite and on PostgreSQL."""
    return store_backend


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
