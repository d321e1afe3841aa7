"""Deployment records: one row per name, replaced on redeploy, updated in place."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlzen.config import load_settings
from mlzen.store import deployments as records
from mlzen.store.metadata import MetadataStore


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, project: Path) -> MetadataStore:
    if request.param == "postgres":
        request.getfixturevalue("postgres_url")
    return MetadataStore(load_settings().store_url)


def test_save_update_get_list(store: MetadataStore) -> None:
    assert records.get_deployment(store, "svc") is None
    saved = records.save_deployment(
        store,
        name="svc",
        model_version_id=None,
        flavor="local",
        status="starting",
        config={"host": "127.0.0.1", "port": 8000},
        url="http://127.0.0.1:8000",
        pid=123,
        log_path="/srv/project/.mlzen/deployments/svc.log",
    )
    assert saved["status"] == "starting"
    assert saved["config"] == {"host": "127.0.0.1", "port": 8000}
    updated = records.update_deployment(store, "svc", status="running")
    assert updated is not None
    assert updated["status"] == "running"
    assert updated["pid"] == 123
    assert updated["updated_at"] >= saved["updated_at"]
    records.save_deployment(
        store, name="other", model_version_id=None, flavor="local", status="running", config={}
    )
    assert [r["name"] for r in records.list_deployments(store)] == ["other", "svc"]


def test_saving_a_name_again_replaces_its_record(store: MetadataStore) -> None:
    first = records.save_deployment(
        store, name="svc", model_version_id=None, flavor="local", status="crashed",
        config={"port": 1}, pid=1,
    )  # fmt: skip
    second = records.save_deployment(
        store, name="svc", model_version_id=None, flavor="local", status="starting",
        config={"port": 2}, pid=2,
    )  # fmt: skip
    assert second["id"] == first["id"]
    assert (second["status"], second["pid"], second["config"]) == ("starting", 2, {"port": 2})
    assert len(records.list_deployments(store)) == 1


def test_bad_status_or_column_is_refused(store: MetadataStore) -> None:
    with pytest.raises(ValueError, match="not one of"):
        records.save_deployment(
            store, name="svc", model_version_id=None, flavor="local", status="up", config={}
        )
    assert records.update_deployment(store, "nope", status="stopped") is None
    with pytest.raises(ValueError, match="cannot be updated"):
        records.update_deployment(store, "svc", created_at=None)
