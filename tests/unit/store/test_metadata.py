"""The metadata store: migrations agree with the tables; SQLite and PostgreSQL behave."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mlzen import Client, pipeline, step
from mlzen.errors import StoreError
from mlzen.store import tables
from mlzen.store.metadata import HEAD_REVISION, MetadataStore


def test_head_revision_constant_matches_the_migrations() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(Path(tables.__file__).parent / "migrations"))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD_REVISION


def _schema_diff(url: str) -> list:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    store = MetadataStore(url)
    with store.engine.connect() as connection:
        return compare_metadata(MigrationContext.configure(connection), tables.metadata)


def test_migrations_create_exactly_the_tables(project: Path) -> None:
    assert _schema_diff(f"sqlite:///{project}/.mlzen/mlzen.db") == []


def test_sqlite_store_is_in_wal_mode(project: Path) -> None:
    MetadataStore(f"sqlite:///{project}/.mlzen/mlzen.db")
    with sqlite3.connect(project / ".mlzen" / "mlzen.db") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_unusable_store_url_is_a_clear_error() -> None:
    with pytest.raises(StoreError, match="nosuchdriver"):
        MetadataStore("nosuchdriver://somewhere/db")


@step
def number(n: int = 1) -> int:
    return n


@pipeline
def tiny(n: int = 1) -> None:
    number(n=n)


def test_pipelines_run_against_postgres(postgres_url: str) -> None:
    assert _schema_diff(postgres_url) == []
    run = tiny(n=4)
    assert run.steps["number"].outputs["output"].load() == 4
    again = tiny(n=4)
    assert again.steps["number"].status == "cached"
    assert [r.status for r in Client().list_pipeline_runs()] == ["completed", "completed"]
