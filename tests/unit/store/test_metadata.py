"""The metadata store: migrations agree with the tables; SQLite and PostgreSQL behave."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from mlzen import Client, pipeline, step
from mlzen.errors import StoreError
from mlzen.store import tables
from mlzen.store.metadata import HEAD_REVISION, MetadataStore, utcnow


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


@pytest.mark.parametrize(
    "value",
    [
        {"a": math.nan, "b": [math.inf, -math.inf], "c": 1.5},
        {"__float__": "nan"},  # a user's dict that looks like a tag comes back as itself
        {"__dict__": {"x": 1}},
        {"plain": [1, "two", None, True]},
    ],
    ids=["non-finite", "tag-lookalike", "dict-tag-lookalike", "plain"],
)
def test_json_columns_round_trip_non_finite_floats_on_every_store(
    store_backend: str, value: dict[str, Any]
) -> None:
    from sqlalchemy import insert, select

    from mlzen.config import load_settings

    store = MetadataStore(load_settings().store_url)
    with store.write() as connection:
        connection.execute(
            insert(tables.artifacts).values(id="a" * 32, name="json-probe", created_at=utcnow())
        )
        connection.execute(
            insert(tables.artifact_versions).values(
                id="v" * 32,
                artifact_id="a" * 32,
                version=1,
                uri="u",
                content_hash="h",
                materializer="m",
                data_type="t",
                size=0,
                metadata=value,
                created_at=utcnow(),
            )
        )
    with store.read() as connection:
        back = connection.execute(select(tables.artifact_versions.c.metadata)).scalar_one()

    assert json.dumps(back, sort_keys=True) == json.dumps(value, sort_keys=True)


def test_json_text_stays_plain_json_when_it_can() -> None:
    from mlzen.store.metadata import dump_json, load_json

    assert dump_json({"a": [1, 2.5, None]}) == '{"a": [1, 2.5, null]}'
    assert json.loads(dump_json([math.nan]), parse_constant=_refuse) == [{"__float__": "nan"}]
    assert math.isnan(load_json(dump_json([math.nan]).encode())[0])  # drivers give bytes too


def _refuse(token: str) -> None:
    raise AssertionError(f"{token} is not JSON")
