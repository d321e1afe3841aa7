"""Model versions in the store: one version per run however many writers race for it,
consecutive numbers across runs, and promotions that never leave two holders of a stage.

Each test runs on SQLite and, where MLZEN_TEST_POSTGRES_URL is set, on PostgreSQL.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from mlzen.errors import StageConflictError
from mlzen.store import models
from mlzen.store.metadata import MetadataStore, dispose_engines

WRITERS = 8


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, project: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{project}/.mlzen/mlzen.db"


def _new_run(store: MetadataStore, name: str) -> str:
    return store.create_run(
        pipeline_name="p",
        run_name=name,
        spec={},
        parameters={},
        stack="default",
        code_version={},
        environment={},
        lease_seconds=60,
    )


def _all_at_once(count: int, call: Callable[[int], Any]) -> list[Any]:
    """Run ``call(i)`` for each i in threads released together by a barrier."""
    barrier = threading.Barrier(count)

    def start(index: int) -> Any:
        barrier.wait()
        return call(index)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(start, range(count)))


def test_racing_steps_of_one_run_get_one_version(store_url: str) -> None:
    store = MetadataStore(store_url)
    run_id = _new_run(store, "r1")
    rows = _all_at_once(
        WRITERS, lambda _: models.resolve_version(store, "churn", None, run_id=run_id)
    )
    assert {row["id"] for row in rows} == {rows[0]["id"]}
    assert [v["version"] for v in models.list_versions(store, "churn")] == [1]


def test_racing_runs_get_consecutive_versions(store_url: str) -> None:
    store = MetadataStore(store_url)
    run_ids = [_new_run(store, f"r{i}") for i in range(WRITERS)]
    rows = _all_at_once(
        WRITERS, lambda i: models.resolve_version(store, "churn", None, run_id=run_ids[i])
    )
    assert sorted(row["version"] for row in rows) == list(range(1, WRITERS + 1))
    assert {row["run_id"] for row in rows} == set(run_ids)


def _resolve_in_process(url: str, run_id: str) -> str:
    return str(models.resolve_version(MetadataStore(url), "churn", None, run_id=run_id)["id"])


def test_racing_processes_get_one_version_per_run(store_url: str) -> None:
    store = MetadataStore(store_url)
    run_ids = [_new_run(store, f"r{i}") for i in range(2)]
    dispose_engines()  # no pooled connection may cross into the workers
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=4, mp_context=context) as pool:
        ids = list(pool.map(_resolve_in_process, [store_url] * 8, run_ids * 4))
    assert len(set(ids[0::2])) == 1 and len(set(ids[1::2])) == 1
    versions = models.list_versions(MetadataStore(store_url), "churn")
    assert sorted(v["version"] for v in versions) == [1, 2]


def test_racing_promotions_leave_one_holder(store_url: str) -> None:
    store = MetadataStore(store_url)
    ids = [
        models.resolve_version(store, "churn", None, run_id=_new_run(store, f"r{i}"))["id"]
        for i in range(WRITERS)
    ]
    _all_at_once(WRITERS, lambda i: models.promote(store, ids[i], "production", force=True))
    stages = [v["stage"] for v in models.list_versions(store, "churn")]
    assert sorted(stages) == ["archived"] * (WRITERS - 1) + ["production"]


def test_racing_promotions_without_force_let_exactly_one_win(store_url: str) -> None:
    store = MetadataStore(store_url)
    ids = [
        models.resolve_version(store, "churn", None, run_id=_new_run(store, f"r{i}"))["id"]
        for i in range(WRITERS)
    ]

    def promote(index: int) -> bool:
        try:
            models.promote(store, ids[index], "staging")
        except StageConflictError:
            return False
        return True

    assert sum(_all_at_once(WRITERS, promote)) == 1
    stages = [v["stage"] for v in models.list_versions(store, "churn")]
    assert sorted(stages) == ["none"] * (WRITERS - 1) + ["staging"]


def test_list_models_reports_counts_and_stage_holders(store_url: str) -> None:
    store = MetadataStore(store_url)
    for i in range(3):
        models.resolve_version(store, "churn", None, run_id=_new_run(store, f"c{i}"))
    models.resolve_version(store, "fraud", None, run_id=_new_run(store, "f0"))
    models.promote(store, models.find_version(store, "churn", 2)["id"], "production")
    rows = {row["name"]: row for row in models.list_models(store)}
    assert (rows["churn"]["version_count"], rows["churn"]["latest_version"]) == (3, 3)
    assert (rows["churn"]["production_version"], rows["churn"]["staging_version"]) == (2, None)
    assert rows["fraud"]["version_count"] == 1
