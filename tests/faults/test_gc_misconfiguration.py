"""``mlzen gc`` pointed at the wrong metadata store deletes nothing (issue 10, B).

A mistyped ``MLZEN_STORE_URL``, an empty (0-byte) SQLite file, another application's
SQLite database, an artifact store that belongs to another metadata store or that other
metadata stores use too: gc refuses, says what looks wrong and how to fix it, and
``--force`` overrides. It also says what it keeps because it is younger than the age
window. Everything through the real command line, on real files.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Annotated

import pytest

from mlzen import Client, pipeline, step
from mlzen.artifacts.materializer import save_artifact
from mlzen.stack import active_stack
from tests.cli import run_main


@step
def numbers(count: int = 3) -> Annotated[list, "numbers"]:
    return list(range(count))


@step
def total(numbers: list) -> Annotated[int, "total"]:
    return sum(numbers)


@pipeline
def counting(count: int = 3) -> None:
    total(numbers(count=count))


@pytest.fixture(autouse=True)
def quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLZEN_PROGRESS", "0")


def artifact_folders(project: Path) -> list[Path]:
    root = project / ".mlzen" / "artifacts"
    return sorted(p for p in root.glob("??/*") if p.is_dir())


def ran(project: Path) -> list[Path]:
    """A project with two recorded versions; their folders."""
    counting(count=3)
    folders = artifact_folders(project)
    assert len(folders) == 2
    return folders


def test_a_mistyped_store_url_is_refused_and_deletes_nothing(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folders = ran(project)
    monkeypatch.setenv("MLZEN_STORE_URL", f"sqlite:///{project / '.mlzen' / 'mlzne.db'}")
    code, out, err = run_main("gc")
    assert code == 2, out + err
    assert "belongs to the metadata store at" in err
    assert str(project / ".mlzen" / "mlzen.db") in err  # the store that owns it
    assert "MLZEN_STORE_URL" in err and "--force" in err
    assert artifact_folders(project) == folders
    code, out, err = run_main("gc", "--dry-run")
    assert code == 2 and artifact_folders(project) == folders

    monkeypatch.delenv("MLZEN_STORE_URL")
    code, out, err = run_main("gc")
    assert code == 0, err
    assert artifact_folders(project) == folders
    assert Client().get_artifact_version("total").load() == 3


def test_a_store_without_an_identity_is_refused_when_nothing_references_it(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stores made before identities: the same mistake shows as zero references."""
    folders = ran(project)
    (project / ".mlzen" / "artifacts" / ".mlzen-store.json").unlink()
    monkeypatch.setenv("MLZEN_STORE_URL", f"sqlite:///{project / 'typo.db'}")
    code, out, err = run_main("gc")
    assert code == 2, out + err
    assert "references none of the 2 artifact folder(s)" in err
    assert "--force" in err
    assert artifact_folders(project) == folders

    # The right store adopts the store (gives it an identity) and keeps its folders.
    monkeypatch.delenv("MLZEN_STORE_URL")
    code, out, err = run_main("gc")
    assert code == 0, err
    assert artifact_folders(project) == folders
    assert (project / ".mlzen" / "artifacts" / ".mlzen-store.json").is_file()


def test_an_empty_sqlite_file_is_an_error_not_a_fresh_store(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folders = ran(project)
    empty = project / "empty.db"
    empty.touch()
    monkeypatch.setenv("MLZEN_STORE_URL", f"sqlite:///{empty}")
    for command in (["gc"], ["gc", "--force"], ["status"]):
        code, out, err = run_main(*command)
        assert code == 2, (command, out + err)
        assert "is empty (0 bytes)" in err and str(empty) in err
    assert empty.stat().st_size == 0
    assert artifact_folders(project) == folders


def test_a_foreign_sqlite_file_is_an_error_and_stays_untouched(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folders = ran(project)
    foreign = project / "crm.db"
    with sqlite3.connect(foreign) as connection:
        connection.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    before = foreign.read_bytes()
    monkeypatch.setenv("MLZEN_STORE_URL", f"sqlite:///{foreign}")
    code, out, err = run_main("gc", "--force")
    assert code == 2, out + err
    assert "SQLite database of something else" in err and "customers" in err
    assert foreign.read_bytes() == before
    assert artifact_folders(project) == folders

    other = project / "other-alembic.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE alembic_version (version_num VARCHAR(32))")
        connection.execute("INSERT INTO alembic_version VALUES ('a1b2c3d4e5')")
    monkeypatch.setenv("MLZEN_STORE_URL", f"sqlite:///{other}")
    code, out, err = run_main("gc")
    assert code == 2 and "'a1b2c3d4e5'" in err


def test_a_missing_sqlite_file_is_still_a_new_store(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = project / "fresh" / "new.db"
    monkeypatch.setenv("MLZEN_STORE_URL", f"sqlite:///{fresh}")
    code, out, err = run_main("status")
    assert code == 0, err
    assert fresh.stat().st_size > 0


def test_gc_refuses_while_another_metadata_store_records_versions_there(
    project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A second project writing into the first's artifact folder (as a project logged in
    to a team server does): neither metadata store sees all references."""
    folders = ran(project)
    owner_url = f"sqlite:///{project / '.mlzen' / 'mlzen.db'}"
    guest_url = f"sqlite:///{tmp_path / 'guest.db'}"
    monkeypatch.setenv("MLZEN_STORE_URL", guest_url)
    counting(count=5)  # the guest records versions here too
    assert len(artifact_folders(project)) == 4

    code, out, err = run_main("gc")  # the guest does not own the store
    assert code == 2 and "belongs to the metadata store at" in err
    monkeypatch.setenv("MLZEN_STORE_URL", owner_url)
    code, out, err = run_main("gc")  # the owner does not see the guest's references
    assert code == 2, out + err
    assert "guest.db" in err and ".mlzen-store." in err
    assert len(artifact_folders(project)) == 4

    code, out, err = run_main("gc", "--force", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["forced"] is True and report["count"] == 2
    assert artifact_folders(project) == folders  # the guest's versions lost their files


def test_force_collects_a_store_whose_runs_were_all_deleted(project: Path) -> None:
    ran(project)
    client = Client()
    for run in client.list_pipeline_runs():
        client.store.delete_run(run.id)
    code, out, err = run_main("gc")
    assert code == 2 and "references none" in err and "--force" in err
    code, out, err = run_main("gc", "--force")
    assert code == 0, err
    assert "Deleted 2 folder(s)" in out
    assert artifact_folders(project) == []


def test_gc_reports_what_it_keeps_because_it_is_young(project: Path) -> None:
    ran(project)
    young = save_artifact(active_stack().artifact_store, {"orphan": True}, name="orphan")
    staging = project / ".mlzen" / "artifacts" / ".staging" / "interrupted"
    staging.mkdir(parents=True)
    (staging / "part").write_bytes(b"12345")

    code, out, err = run_main("gc", "--min-age", "3600", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["count"] == 0 and report["recent"] == 1
    kept = {item["kind"]: item for item in report["young"]}
    assert kept["artifact"]["uri"] == young.uri and kept["artifact"]["window"] == 3600
    assert kept["leftover"]["uri"] == str(staging) and kept["leftover"]["size"] == 5
    assert 0 <= kept["artifact"]["age"] < 3600

    code, out, err = run_main("gc", "--min-age", "3600")
    assert code == 0, err
    assert "Kept 2 unreferenced folder(s) younger than their age window" in out
    assert young.uri in out and str(staging) in out
