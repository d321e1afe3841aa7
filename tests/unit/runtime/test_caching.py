"""The cache-invalidation matrix: exactly the affected steps and their downstream rerun.

Each run happens in a fresh Python process, as a user editing code would see it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Annotated

import pytest
from sqlalchemy import update

from mlzen import Client, pipeline, step
from mlzen.store import tables

HELPERS = """
def scale(x):
    return x * {factor}
"""

PIPELINE = """
from helpers import scale
from mlzen import pipeline, step


@step
def a(value: int = {value}) -> int:
    return value


@step
def b(x: int) -> int:
    return scale(x)


@step
def c(x: int) -> int:
    return x + {offset}


@step
def d(value: int = 7) -> int:
    return value


@pipeline
def matrix():
    c(b(a()))
    d()
"""

RUNNER = """
import json, sys
sys.path.insert(0, ".")
import project_steps
run = project_steps.matrix()
print(json.dumps({s.name: s.status for s in run.steps.values()}))
"""


def write(root: Path, *, factor: int = 2, value: int = 1, offset: int = 0) -> None:
    (root / "helpers.py").write_text(textwrap.dedent(HELPERS.format(factor=factor)))
    (root / "project_steps.py").write_text(
        textwrap.dedent(PIPELINE.format(value=value, offset=offset))
    )


def run_statuses(root: Path) -> dict[str, str]:
    result = subprocess.run(
        [sys.executable, "-c", RUNNER],
        cwd=root,
        env={**os.environ, "MLZEN_PROJECT_ROOT": str(root)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def ran(statuses: dict[str, str]) -> set[str]:
    return {name for name, status in statuses.items() if status == "completed"}


@pytest.fixture
def root(project: Path) -> Path:
    write(project)
    assert ran(run_statuses(project)) == {"a", "b", "c", "d"}
    return project


def test_unchanged_rerun_is_fully_cached(root: Path) -> None:
    statuses = run_statuses(root)
    assert set(statuses.values()) == {"cached"}


def test_editing_a_helper_reruns_its_caller_and_downstream(root: Path) -> None:
    write(root, factor=3)
    assert ran(run_statuses(root)) == {"b", "c"}


def test_changing_a_parameter_reruns_that_step_and_downstream(root: Path) -> None:
    write(root, value=5)
    assert ran(run_statuses(root)) == {"a", "b", "c"}


def test_editing_a_leaf_step_reruns_only_it(root: Path) -> None:
    write(root, offset=1)
    assert ran(run_statuses(root)) == {"c"}


def test_upstream_rerun_with_same_content_keeps_downstream_cached(root: Path) -> None:
    # a's code changes but its output stays 1: b and c see identical input content.
    (root / "project_steps.py").write_text(
        (root / "project_steps.py").read_text().replace("return value\n", "return value * 1\n", 1)
    )
    assert ran(run_statuses(root)) == {"a"}


def test_missing_cached_output_is_not_a_hit(root: Path) -> None:
    import shutil

    from mlzen import Client

    run = Client().get_pipeline_run("latest")
    shutil.rmtree(run.steps["d"].outputs["output"].uri)
    assert ran(run_statuses(root)) == {"d"}


def test_cache_key_parts_are_stored_for_explanations(root: Path) -> None:
    from mlzen import Client

    step_run = Client().get_pipeline_run("latest").steps["b"]
    parts = step_run.cache_key_parts
    assert set(parts) >= {"code", "code_parts", "parameters", "inputs", "outputs", "settings"}
    assert "helpers:scale" in parts["code_parts"]
    assert "project_steps:b" in parts["code_parts"]
    assert parts["inputs"]["x"] == step_run.inputs["x"].content_hash


def test_output_available_checks_the_manifest_when_one_was_recorded(tmp_path: Path) -> None:
    from mlzen.artifacts.local import LocalArtifactStore
    from mlzen.artifacts.materializer import save_artifact
    from mlzen.runtime.caching import output_available

    store = LocalArtifactStore(tmp_path / "artifacts")
    saved = save_artifact(store, list(range(100)), name="numbers")
    assert output_available(store, saved.uri, saved.files)

    for file in Path(saved.uri).iterdir():
        file.unlink()  # the folder is kept

    assert not output_available(store, saved.uri, saved.files)
    # A version recorded before manifests were (files NULL) keeps the old check.
    assert output_available(store, saved.uri, None)
    assert not output_available(store, saved.uri + "-gone", None)


@step
def make() -> Annotated[list, "made"]:
    return [1, 2, 3]


@pipeline
def old_records():
    make()


def test_a_version_without_a_manifest_is_still_a_hit_while_its_folder_exists() -> None:
    first = old_records()
    version = first.steps["make"].outputs["made"]
    assert version.files  # recorded at save
    store = Client().store
    with store.write() as connection:
        connection.execute(
            update(tables.artifact_versions)
            .where(tables.artifact_versions.c.id == version.id)
            .values(files=None)
        )
    for file in Path(version.uri).iterdir():
        file.unlink()

    assert old_records().steps["make"].status == "cached"
