"""Shared fixtures: every test gets its own throw-away mlzen project."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlzen.store.metadata import dispose_engines

POSTGRES_URL = os.environ.get("MLZEN_TEST_POSTGRES_URL")


@pytest.fixture(autouse=True)
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh project root with its own SQLite store and artifact folder."""
    root = tmp_path / "project"
    (root / ".mlzen").mkdir(parents=True)
    monkeypatch.setenv("MLZEN_PROJECT_ROOT", str(root))
    for name in (
        "MLZEN_STORE_URL",
        "MLZEN_ARTIFACT_ROOT",
        "MLZEN_EXECUTOR",
        "MLZEN_MAX_WORKERS",
        "MLZEN_STACK",
        "MLZEN_SECRETS_KEY",
        "MLZEN_SERVER_URL",  # a developer's login must not send test runs to a server
        "MLZEN_API_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    yield root
    dispose_engines()


@pytest.fixture
def postgres_url(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A PostgreSQL store emptied for this test; skips where no server is configured."""
    if not POSTGRES_URL:
        pytest.skip("MLZEN_TEST_POSTGRES_URL is not set (.ci/run sets it)")
    empty_postgres(POSTGRES_URL)
    monkeypatch.setenv("MLZEN_STORE_URL", POSTGRES_URL)
    yield POSTGRES_URL


@pytest.fixture(params=["sqlite", "postgres"])
def store_backend(request: pytest.FixtureRequest) -> str:
    """Run the test on SQLite and (where configured) on PostgreSQL; the store's kind."""
    if request.param == "postgres":
        request.getfixturevalue("postgres_url")
    return request.param


def empty_postgres(url: str) -> None:
    """Drop and recreate the ``public`` schema of the PostgreSQL database at ``url``."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()
