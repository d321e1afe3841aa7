"""The metadata store's side of the pairing: its id, the artifact stores it records
versions in, and versions recorded before store ids."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import update

from mlzen.config import load_settings
from mlzen.errors import ConfigError
from mlzen.store import identity as pairing
from mlzen.store import tables as t
from mlzen.store.metadata import MetadataStore, OutputRecord


@pytest.fixture
def store(store_backend: str, project: Path) -> MetadataStore:
    return MetadataStore(load_settings().store_url)


def test_a_metadata_store_has_one_id_made_on_first_use(store: MetadataStore) -> None:
    first = pairing.metadata_store_id(store)
    assert len(first) == 32 and int(first, 16) >= 0
    assert pairing.metadata_store_id(store) == first
    assert pairing.metadata_store_id(MetadataStore(store.url)) == first


def test_artifact_stores_are_registered_once(store: MetadataStore) -> None:
    assert pairing.artifact_stores(store) == {}
    assert pairing.register_artifact_store(store, "c" * 32, "/data/artifacts") is True
    assert pairing.register_artifact_store(store, "c" * 32, "/moved") is False
    assert pairing.artifact_stores(store) == {"c" * 32: "/data/artifacts"}
    with pytest.raises(ConfigError):
        pairing.register_artifact_store(store, "../x", "/")


def record_outputs(store: MetadataStore, count: int) -> list[str]:
    """One run, one step, ``count`` outputs recorded in artifact store ``f`` * 32."""
    run_id = store.create_run(
        pipeline_name="p", run_name=f"r-{uuid.uuid4().hex}", spec={}, parameters={},
        stack="local", code_version={}, environment={}, lease_seconds=60,
    )  # fmt: skip
    step_run_id = store.start_step_run(
        run_id=run_id, step_id="s", step_name="s", parameters={}, config={}, source="",
        code_hash="0" * 64, cache_key="k", cache_key_parts={}, inputs={},
    )  # fmt: skip
    outputs = []
    for i in range(count):
        content_hash = f"{i:02x}" * 32
        outputs.append(
            OutputRecord(
                f"out{i}",
                f"/store/{content_hash[:2]}/{content_hash}",
                content_hash,
                "mlzen.artifacts.builtin:JSONMaterializer",
                "builtins.int",
                1,
                {},
                artifact_store_id="f" * 32,
            )  # fmt: skip
        )
    created = store.finish_step_run(step_run_id, status="completed", outputs=outputs)
    return list(created.values())


def test_versions_without_a_store_id_can_be_adopted(store: MetadataStore) -> None:
    ids = record_outputs(store, 3)
    with store.write() as connection:
        connection.execute(update(t.artifact_versions).values(artifact_store_id=None))
    legacy = pairing.legacy_versions(store)
    assert sorted(row["id"] for row in legacy) == sorted(ids)
    assert pairing.legacy_versions(store, after=max(ids)) == []
    assert pairing.adopt_versions(store, "d" * 32, ids[:2]) == 2
    assert pairing.adopt_versions(store, "e" * 32, ids) == 1  # the others are taken
    assert [row["id"] for row in pairing.legacy_versions(store)] == []
