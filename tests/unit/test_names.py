"""One rule for every recorded name, applied where a name is given and by the store."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated

import pytest

from mlzen import Model, pipeline, step
from mlzen.config import load_settings
from mlzen.errors import InvalidNameError, PipelineDefinitionError, StepDefinitionError
from mlzen.names import check_name, name_problem
from mlzen.store import deployments, registry
from mlzen.store.metadata import MetadataStore
from mlzen.store.models import resolve_version

BAD = ["a/b", "/abs", "..", "../up", "x..y", "back\\slash", "new\nline", "nul\x00", "", "  ",
       "bell\x07", "para\u2029", "x" * 256]  # fmt: skip
GOOD = ["train", "train_2", "churn-production", "raw.v1", "modèle", "x" * 255, "a b"]


@pytest.mark.parametrize("name", BAD)
def test_bad_names_are_refused_naming_them(name: str) -> None:
    assert name_problem(name) is not None
    with pytest.raises(InvalidNameError) as refused:
        check_name("artifact", name)
    assert repr(name)[:40] in refused.value.message or len(name) > 80
    assert refused.value.kind == "artifact"


@pytest.mark.parametrize("name", GOOD)
def test_good_names_pass(name: str) -> None:
    assert check_name("run", name) == name


def test_step_outputs_pipelines_ids_and_models_are_checked_when_defined() -> None:
    with pytest.raises(StepDefinitionError, match="'a/b'"):

        @step
        def bad_output() -> Annotated[int, "a/b"]:
            return 1

    with pytest.raises(StepDefinitionError, match=r"'\.\.'"):

        @step
        def bad_outputs() -> tuple[Annotated[int, "ok"], Annotated[int, ".."]]:
            return 1, 2

    with pytest.raises(InvalidNameError, match="'x/y'"):
        pipeline(name="x/y")(lambda: None)
    with pytest.raises(InvalidNameError, match="'m/1'"):
        Model("m/1")

    @step
    def one() -> int:
        return 1

    @pipeline
    def with_id() -> None:
        one(id="../one")

    with pytest.raises(PipelineDefinitionError, match=r"'\.\./one'"):
        with_id.build()


def test_the_store_refuses_bad_names_whoever_calls_it(project: Path) -> None:
    store = MetadataStore(load_settings().store_url)
    with pytest.raises(InvalidNameError, match="'run/1'"):
        store.create_run(
            pipeline_name="p", run_name="run/1", spec={}, parameters={}, stack="local",
            code_version={}, environment={}, lease_seconds=60,
        )  # fmt: skip
    run_id = store.create_run(
        pipeline_name="p", run_name=f"r-{uuid.uuid4().hex}", spec={}, parameters={},
        stack="local", code_version={}, environment={}, lease_seconds=60,
    )  # fmt: skip
    with pytest.raises(InvalidNameError):
        store.start_step_run(
            run_id=run_id, step_id="s\n", step_name="s", parameters={}, config={}, source="",
            code_hash="0" * 64, cache_key="k", cache_key_parts={}, inputs={},
        )  # fmt: skip
    with pytest.raises(InvalidNameError):
        resolve_version(store, "m/../x", None, run_id=run_id)
    with pytest.raises(InvalidNameError):
        deployments.save_deployment(
            store, name="d/x", model_version_id=None, flavor="local", status="running", config={}
        )
    with pytest.raises(InvalidNameError):
        registry.save_component(store, kind="orchestrator", name="..", flavor="local", config={})
    with pytest.raises(InvalidNameError):
        registry.save_stack(store, "a/b", {})
