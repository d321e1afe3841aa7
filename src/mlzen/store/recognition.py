"""Recognising an mlzen metadata store before its schema is created or migrated.

A missing SQLite file becomes a new, empty store, as always. Anything else that is not
an mlzen store is an error, never silently a fresh one: an empty (0-byte) file, a file
that is not an SQLite database, a database holding other tables and no mlzen schema, or
a schema revision this mlzen does not know (another application's Alembic history, or
a newer mlzen). A fresh store where the runs were expected is how ``mlzen gc`` came to
see every artifact as unreferenced.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from sqlalchemy import Connection, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DatabaseError

from mlzen.errors import StoreError

MIGRATIONS = Path(__file__).parent / "migrations"
_FIX = (
    "Check MLZEN_STORE_URL (or the stack's metadata store): it should name the project's "
    "mlzen.db. To start a new store there, remove the file or pick a new path."
)


def sqlite_file(url: str) -> Path | None:
    """The database file of an SQLite URL; ``None`` for other databases and ``:memory:``."""
    if not url.startswith("sqlite"):
        return None
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def has_content(path: Path) -> bool:
    """Whether an SQLite file exists and holds something (itself or its write-ahead log)."""
    for candidate in (path, Path(f"{path}-wal")):
        try:
            if candidate.stat().st_size > 0:
                return True
        except FileNotFoundError:
            continue
    return False


def refuse_foreign_file(url: str, shown: str) -> None:
    """Raise if the URL's SQLite file exists but is not an mlzen store (or an empty one).

    Call it before connecting: mlzen's connections write to the file (a missing one is
    created, WAL mode is switched on), so the file is looked at read-only here, and a
    file that is not mlzen's is left exactly as it was.
    """
    path = sqlite_file(url)
    if path is None or not path.exists():
        return
    if not has_content(path):
        raise StoreError(
            f"The metadata store file {os.fspath(path)} is empty (0 bytes), so it is not an "
            f"mlzen store: a copy that failed, or a file made by mistake. If it should hold "
            f"this project's runs, restore it from a backup. {_FIX}",
            store_url=shown,
        )
    try:
        with contextlib.closing(
            sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        ) as connection:
            tables = {
                row[0]
                for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            revision = (
                connection.execute("SELECT version_num FROM alembic_version").fetchone()
                if "alembic_version" in tables
                else None
            )
    except sqlite3.DatabaseError as exc:
        raise StoreError(
            f"The metadata store file {os.fspath(path)} is not an SQLite database mlzen can "
            f"read ({exc}). {_FIX}",
            store_url=shown,
        ) from None
    if revision is None and tables - {"alembic_version"}:
        listed = ", ".join(sorted(tables)[:5])
        raise StoreError(
            f"The metadata store at '{shown}' is an SQLite database of something else (it "
            f"holds the tables {listed} and no mlzen schema). {_FIX}",
            store_url=shown,
        )
    _refuse_unknown(revision[0] if revision else None, shown)


def refuse_foreign(connection: Connection, shown: str) -> None:
    """Raise if the database ``connection`` reaches has a schema revision that is not
    mlzen's. (A PostgreSQL or MySQL database may hold other applications' tables.)"""
    try:
        tables = set(inspect(connection).get_table_names())
        revision = (
            connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
            if "alembic_version" in tables
            else None
        )
    except DatabaseError as exc:
        raise StoreError(
            f"The metadata store at '{shown}' is not a database mlzen can read "
            f"({exc.orig}). {_FIX}",
            store_url=shown,
        ) from None
    _refuse_unknown(revision, shown)


def _refuse_unknown(revision: str | None, shown: str) -> None:
    if revision is not None and revision not in _known_revisions():
        raise StoreError(
            f"The metadata store at '{shown}' has the schema revision '{revision}', which is "
            "not one of mlzen's: another application's database, or one written by a newer "
            f"mlzen (upgrade mlzen to use it). {_FIX}",
            store_url=shown,
        )


def _known_revisions() -> set[str]:
    # Each migration file is named after its revision id ("0004_trust_and_safety.py").
    return {path.name.split("_", 1)[0] for path in (MIGRATIONS / "versions").glob("[0-9]*_*.py")}
