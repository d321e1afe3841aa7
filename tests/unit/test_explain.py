"""``explain_step``: why a step was or was not a cache hit, against real earlier runs.

Code changes happen between runs in fresh Python processes, as a user editing their
project would see them: a helper edited, a helper added, the step's own source edited,
an installed package upgraded, a parameter changed and an upstream output changed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from mlzen import Client, pipeline, step
from mlzen.errors import NotFoundError, RunFailedError
from mlzen.explain import explain_step

HELPERS = """
def scale(x):
    return x * {factor}


def shift(x):
    return x + 0
"""

STEPS = """
import fakepkg
from helpers import scale, shift
from mlzen import pipeline, step


@step
def load(value: int = 1) -> int:
    return value


@step
def transform(x: int, offset: int = 0) -> int:
    return {body}


@step(enable_cache=False)
def audit(x: int) -> int:
    return x


@step
def report(x: int, label: str = "first") -> int:
    return x


@pipeline
def demo(value: int = 1, offset: int = 0):
    result = transform(load(value=value), offset=offset)
    audit(result)
    report(result)
    report(result, label="second")
"""

BODY = "scale(x) + offset + fakepkg.ZERO"
EDITED_BODY = "shift(scale(x)) + offset + fakepkg.ZERO"

RUNNER = """
import json, sys
sys.path.insert(0, "vendor/site-packages")
sys.path.insert(0, ".")
import demo_steps
run = demo_steps.demo(value=int(sys.argv[1]), offset=int(sys.argv[2]))
print(json.dumps({"id": run.id, "name": run.name}))
"""


def write_project(
    root: Path, *, factor: int = 2, body: str = BODY, package_version: str = "1.0"
) -> None:
    """The user's project: a helper module, the steps, and an installed package."""
    (root / "helpers.py").write_text(textwrap.dedent(HELPERS.format(factor=factor)))
    (root / "demo_steps.py").write_text(textwrap.dedent(STEPS.format(body=body)))
    packages = root / "vendor" / "site-packages"
    (packages / "fakepkg").mkdir(parents=True, exist_ok=True)
    (packages / "fakepkg" / "__init__.py").write_text("ZERO = 0\n")
    for old in packages.glob("fakepkg-*.dist-info"):
        shutil.rmtree(old)
    info = packages / f"fakepkg-{package_version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: fakepkg\nVersion: {package_version}\n"
    )


def run_demo(root: Path, value: int = 1, offset: int = 0) -> str:
    """Run the pipeline in a fresh process; returns the run's name."""
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, str(value), str(offset)],
        cwd=root,
        env={**os.environ, "MLZEN_PROJECT_ROOT": str(root)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])["name"]


def make_history(root: Path) -> dict[str, str]:
    """Three runs: the first, an unchanged rerun, and one after edits everywhere."""
    write_project(root)
    first = run_demo(root)
    unchanged = run_demo(root)
    write_project(root, factor=3, body=EDITED_BODY, package_version="2.0")
    edited = run_demo(root, value=2, offset=1)
    return {"first": first, "unchanged": unchanged, "edited": edited}


@pytest.fixture
def history(project: Path) -> dict[str, str]:
    return make_history(project)


def test_first_run_has_no_earlier_run(history: dict[str, str]) -> None:
    explanation = explain_step(Client(), history["first"], "load")
    assert explanation.reason == "no_earlier_run" and not explanation.cached
    assert "no earlier run of this step" in explanation.summary
    assert explanation.compared_with is None and explanation.diff is None


def test_a_cache_hit_names_the_step_run_it_reused(history: dict[str, str]) -> None:
    client = Client()
    explanation = explain_step(client, history["unchanged"], "transform")
    assert explanation.cached and explanation.reason == "cached"
    origin = explanation.cached_from
    first_run = client.get_pipeline_run(history["first"])
    assert origin is not None
    assert origin.run_name == history["first"] and origin.run_id == first_run.id
    assert origin.step_run_id == first_run.steps["transform"].id
    assert history["first"] in explanation.summary


def test_disabled_caching_is_the_reason(history: dict[str, str]) -> None:
    explanation = explain_step(Client(), history["unchanged"], "audit")
    assert explanation.reason == "cache_disabled"
    assert "caching was disabled for this step" in explanation.summary
    assert explanation.diff is not None and explanation.diff.parts == []


def test_a_parameter_change_is_named_with_old_and_new_values(history: dict[str, str]) -> None:
    explanation = explain_step(Client(), history["edited"], "load")
    assert explanation.reason == "key_changed"
    diff = explanation.diff
    assert diff is not None and diff.parts == ["parameters"]
    assert [(c.name, c.change, c.old, c.new) for c in diff.parameters] == [
        ("value", "changed", 1, 2)
    ]
    assert explanation.compared_with is not None
    assert explanation.compared_with.run_name == history["unchanged"]


def test_code_package_parameter_and_input_changes_are_each_named(
    history: dict[str, str],
) -> None:
    client = Client()
    explanation = explain_step(client, history["edited"], "transform")
    assert explanation.reason == "key_changed"
    assert explanation.step_function == "demo_steps:transform"
    diff = explanation.diff
    assert diff is not None
    assert diff.parts == ["code", "parameters", "inputs"]
    functions = {c.name: c.change for c in diff.functions}
    assert functions == {
        "helpers:scale": "changed",
        "helpers:shift": "added",
        "demo_steps:transform": "changed",
    }
    assert [(p.name, p.change, p.old, p.new) for p in diff.packages] == [
        ("fakepkg", "changed", "1.0", "2.0")
    ]
    assert f"-    return {BODY}\n" in diff.source_diff
    assert f"+    return {EDITED_BODY}\n" in diff.source_diff
    assert f"--- {history['unchanged']}:transform" in diff.source_diff
    assert [(c.name, c.old, c.new) for c in diff.parameters] == [("offset", 0, 1)]
    (change,) = diff.inputs
    before = client.get_pipeline_run(history["unchanged"]).steps["transform"]
    after = client.get_pipeline_run(history["edited"]).steps["transform"]
    assert change.argument == "x" and change.producer == "load.output"
    assert change.old_hash == before.inputs["x"].content_hash
    assert change.new_hash == after.inputs["x"].content_hash != change.old_hash
    assert change.old_artifact == f"output:{before.inputs['x'].version}"
    assert change.new_artifact == f"output:{after.inputs['x'].version}"
    assert diff.outputs == [] and diff.settings == [] and diff.other == []


def test_only_the_upstream_content_change_is_named_downstream(history: dict[str, str]) -> None:
    explanation = explain_step(Client(), history["edited"], "report_2")
    diff = explanation.diff
    assert explanation.reason == "key_changed" and diff is not None
    assert diff.parts == ["inputs"]
    assert diff.inputs[0].producer == "transform.output"
    assert explanation.compared_with is not None
    assert explanation.compared_with.step == "report_2"


def test_explanation_serialises_to_plain_json(history: dict[str, str]) -> None:
    data = explain_step(Client(), history["edited"], "transform").to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["diff"]["parts"] == ["code", "parameters", "inputs"]


# -- reasons that need no code change: steps defined here, runs in this process ----------

switch = {"fail": False}
gate = {"calls": 0}
first_call_started = threading.Event()
release_first_call = threading.Event()


@step
def produce(n: int = 3) -> list:
    if switch["fail"]:
        raise RuntimeError("produce failed on purpose")
    return list(range(n))


@step
def consume(values: list) -> int:
    return sum(values)


@pipeline
def chain(n: int = 3):
    consume(produce(n=n))


@step
def slow(n: int = 1) -> int:
    gate["calls"] += 1
    if gate["calls"] == 1:
        first_call_started.set()
        release_first_call.wait(timeout=60)
    return n


@pipeline
def overlapping():
    slow()


def test_identical_key_with_missing_outputs() -> None:
    first = chain()
    shutil.rmtree(first.steps["produce"].outputs["output"].uri)
    second = chain()
    assert second.steps["produce"].status == "completed"
    explanation = explain_step(Client(), second.id, "produce")
    assert explanation.reason == "outputs_missing"
    assert (
        "identical key, but the earlier outputs were missing from the artifact store"
        in explanation.summary
    )
    assert explanation.compared_with is not None
    assert explanation.compared_with.step_run_id == first.steps["produce"].id
    assert explanation.diff is not None and explanation.diff.parts == []
    assert explanation.missing_outputs == []  # the rerun wrote them back
    shutil.rmtree(first.steps["produce"].outputs["output"].uri)
    again = explain_step(Client(), second.id, "produce")
    assert again.missing_outputs == ["output"] and "still missing: output" in again.summary


def test_identical_key_after_a_failed_run() -> None:
    switch["fail"] = True
    try:
        with pytest.raises(RunFailedError):
            chain()
    finally:
        switch["fail"] = False
    second = chain()
    explanation = explain_step(Client(), second.id, "produce")
    assert explanation.reason == "earlier_run_failed"
    assert "'failed'" in explanation.summary
    assert "only successful step runs are reused" in explanation.summary


def test_identical_key_while_the_earlier_run_was_still_running() -> None:
    gate["calls"] = 0
    first_call_started.clear()
    release_first_call.clear()
    runs = {}
    thread = threading.Thread(target=lambda: runs.setdefault("first", overlapping()))
    thread.start()
    try:
        assert first_call_started.wait(timeout=60)
        second = overlapping()
    finally:
        release_first_call.set()
        thread.join(timeout=60)
    assert second.steps["slow"].status == "completed"
    explanation = explain_step(Client(), second.id, "slow")
    assert explanation.reason == "earlier_run_unfinished"
    assert explanation.compared_with is not None
    assert explanation.compared_with.run_name == runs["first"].name


def test_unknown_run_is_not_found_naming_it() -> None:
    chain()
    with pytest.raises(NotFoundError, match="no-such-run"):
        explain_step(Client(), "no-such-run", "produce")


def test_unknown_step_is_not_found_listing_the_steps() -> None:
    run = chain()
    with pytest.raises(NotFoundError) as caught:
        explain_step(Client(), run.id, "nope")
    assert "'nope'" in caught.value.message and "produce, consume" in caught.value.message
    assert caught.value.step_name == "nope"


def test_a_step_that_never_ran_is_not_found_saying_so() -> None:
    switch["fail"] = True
    try:
        with pytest.raises(RunFailedError) as failed:
            chain()
    finally:
        switch["fail"] = False
    with pytest.raises(NotFoundError) as caught:
        explain_step(Client(), failed.value.run.id, "consume")
    assert "'consume'" in caught.value.message and "never ran" in caught.value.message
    assert "Steps that ran: produce" in caught.value.message
