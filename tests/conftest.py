"""Shared fixtures: every test gets its own throw-away mlzen project."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlzen.store.metadata import dispose_engines

#: The server named by CI; each test session makes a database of its own on it.
_SERVER_URL = os.environ.get("MLZEN_TEST_POSTGRES_URL")
_DATABASE_PREFIX = "mlzen_test_"
POSTGRES_SKIP_REASON = "MLZEN_TEST_POSTGRES_URL is not set (.ci/run sets it)"


def _admin_engine():  # type: ignore[no-untyped-def]
    from sqlalchemy import create_engine

    return create_engine(_SERVER_URL, isolation_level="AUTOCOMMIT")


def _drop_abandoned_databases(connection) -> None:  # type: ignore[no-untyped-def]
    """Drop the databases of test sessions on this machine whose process is gone."""
    from sqlalchemy import text

    names = connection.execute(
        text("SELECT datname FROM pg_database WHERE datname LIKE :prefix"),
        {"prefix": _DATABASE_PREFIX + "%"},
    ).scalars()
    for name in list(names):
        pid = name.removeprefix(_DATABASE_PREFIX).split("_")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _create_session_database() -> str | None:
    """A new database for this test session, so two suites on one server never collide."""
    if not _SERVER_URL:
        return None
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    name = f"{_DATABASE_PREFIX}{os.getpid()}_{uuid.uuid4().hex[:8]}"
    engine = _admin_engine()
    with engine.connect() as connection:
        _drop_abandoned_databases(connection)
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return make_url(_SERVER_URL).set(database=name).render_as_string(hide_password=False)


_SESSION_URL_VARIABLE = "MLZEN_TEST_SESSION_POSTGRES_URL"
#: This session's own PostgreSQL database (``None`` where no server is configured).
#: Made by the pytest process; processes it starts find it in the environment.
POSTGRES_URL = os.environ.get(_SESSION_URL_VARIABLE)


def pytest_configure(config: pytest.Config) -> None:
    """Make this session's PostgreSQL database before any test module is imported."""
    global POSTGRES_URL
    if POSTGRES_URL is None:
        POSTGRES_URL = _create_session_database()
        if POSTGRES_URL:
            os.environ[_SESSION_URL_VARIABLE] = POSTGRES_URL
            config.add_cleanup(_drop_session_database)


def _drop_session_database() -> None:
    """Drop this session's PostgreSQL database."""
    assert POSTGRES_URL
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    dispose_engines()
    engine = _admin_engine()
    with engine.connect() as connection:
        name = make_url(POSTGRES_URL).database
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


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
        pytest.skip(POSTGRES_SKIP_REASON)
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
