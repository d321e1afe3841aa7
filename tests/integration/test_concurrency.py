"""Several processes running pipelines against one store (SQLite, PostgreSQL) lose nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mlzen import Client

SCRIPT = textwrap.dedent(
    """
    import sys
    from mlzen import pipeline, step

    @step(enable_cache=False)
    def produce(worker: int, i: int) -> list:
        return [worker, i]

    @step(enable_cache=False)
    def consume(data: list) -> int:
        return sum(data)

    @pipeline
    def busy(worker: int, i: int):
        consume(produce(worker=worker, i=i))

    worker = int(sys.argv[1])
    for i in range(int(sys.argv[2])):
        busy(worker=worker, i=i)
    """
)


@pytest.fixture(params=["sqlite", "postgres"])
def store_env(request: pytest.FixtureRequest, project: Path) -> dict[str, str]:
    env = {**os.environ, "MLZEN_PROJECT_ROOT": str(project)}
    if request.param == "postgres":
        env["MLZEN_STORE_URL"] = request.getfixturevalue("postgres_url")
    return env


def test_parallel_processes_share_one_store(project: Path, store_env: dict[str, str]) -> None:
    (project / "busy.py").write_text(SCRIPT)
    env = store_env
    Client()  # create the store once, as `mlzen init` would
    processes = [
        subprocess.Popen(
            [sys.executable, "busy.py", str(w), "12"],
            cwd=project,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(4)
    ]
    results = [(p.communicate(timeout=240)[1], p.returncode) for p in processes]
    for stderr, returncode in results:
        assert returncode == 0, stderr
    client = Client()
    runs = client.list_pipeline_runs(limit=100)
    assert len(runs) == 48
    assert {r.status for r in runs} == {"completed"}
    produced = client.list_artifact_versions("output", limit=200)
    assert len(produced) == 96
    assert sorted(v.version for v in produced) == list(range(1, 97))
    sums = sorted(r.steps["consume"].outputs["output"].load() for r in runs)
    assert sums == sorted(w + i for w in range(4) for i in range(12))


def test_first_use_by_many_processes_migrates_once(project: Path) -> None:
    code = "from mlzen import Client; Client().list_pipeline_runs()"
    env = {**os.environ, "MLZEN_PROJECT_ROOT": str(project)}
    processes = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    results = [(p.communicate(timeout=120)[1], p.returncode) for p in processes]
    for stderr, returncode in results:
        assert returncode == 0, stderr
