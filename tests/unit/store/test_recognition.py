"""A database that is not an mlzen store is an error, never silently a fresh store."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from mlzen.errors import StoreError
from mlzen.store.metadata import MetadataStore, dispose_engines
from mlzen.store.recognition import MIGRATIONS, _known_revisions


def test_known_revisions_are_the_migration_files_revisions() -> None:
    declared = {
        re.search(r'^revision = "(\w+)"', path.read_text(), re.M).group(1)  # type: ignore[union-attr]
        for path in (MIGRATIONS / "versions").glob("[0-9]*_*.py")
    }
    assert _known_revisions() == declared


def test_a_missing_file_becomes_a_new_store(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "new.db"
    MetadataStore(f"sqlite:///{path}")
    assert path.stat().st_size > 0


def test_an_existing_store_opens_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'mlzen.db'}"
    MetadataStore(url)
    dispose_engines()  # a new process, as far as the store is concerned
    MetadataStore(url)


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    with pytest.raises(StoreError, match=r"is empty \(0 bytes\)") as refused:
        MetadataStore(f"sqlite:///{path}")
    assert str(path) in refused.value.message and "MLZEN_STORE_URL" in refused.value.message
    assert path.stat().st_size == 0


def test_a_file_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n" * 200)
    with pytest.raises(StoreError, match="not an SQLite database"):
        MetadataStore(f"sqlite:///{path}")
    assert path.read_text().startswith("these are my notes")


def test_another_applications_sqlite_file_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE orders (id INTEGER)")
    before = path.read_bytes()
    with pytest.raises(StoreError, match="SQLite database of something else") as refused:
        MetadataStore(f"sqlite:///{path}")
    assert "orders" in refused.value.message
    assert path.read_bytes() == before


def test_an_unknown_schema_revision_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "alembic.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE alembic_version (version_num VARCHAR(32))")
        connection.execute("INSERT INTO alembic_version VALUES ('9f8e7d')")
    with pytest.raises(StoreError, match="'9f8e7d'"):
        MetadataStore(f"sqlite:///{path}")


def test_an_unknown_revision_is_refused_on_postgres(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32))"))
        connection.execute(text("INSERT INTO alembic_version VALUES ('someone-elses')"))
    engine.dispose()
    dispose_engines()
    with pytest.raises(StoreError, match="'someone-elses'"):
        MetadataStore(postgres_url)


def test_other_tables_in_a_postgres_database_are_fine(postgres_url: str) -> None:
    """A PostgreSQL database may be shared with other applications."""
    engine = create_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE someone_elses (id INTEGER)"))
    engine.dispose()
    dispose_engines()
    MetadataStore(postgres_url)
