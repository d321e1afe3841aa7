"""`mlzen runs explain RUN STEP`, driven like a user would, over real code changes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlzen import Client
from tests.cli import invoke, run_main
from tests.unit.test_explain import BODY, EDITED_BODY, make_history


@pytest.fixture(scope="module")
def history_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One project with three runs (first, unchanged rerun, edited), shared by the tests."""
    root = tmp_path_factory.mktemp("explain") / "project"
    (root / ".mlzen").mkdir(parents=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLZEN_PROJECT_ROOT", str(root))
        history = make_history(root)
    (root / "history.json").write_text(json.dumps(history))
    return root


@pytest.fixture
def history(history_root: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("MLZEN_PROJECT_ROOT", str(history_root))
    return json.loads((history_root / "history.json").read_text())


def test_key_change_is_shown_as_a_diff(history: dict[str, str]) -> None:
    result = invoke("runs", "explain", history["edited"], "transform")
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"transform in run {history['edited']}: completed" in out
    assert "Not cached: the cache key differs from step 'transform'" in out
    assert history["unchanged"] in out
    assert "in: code, parameters, inputs." in out
    code = out[out.index("\ncode\n") :]
    assert "~ helpers:scale  source changed" in code
    assert "+ helpers:shift  now used" in code
    assert "~ demo_steps:transform  source changed (the step itself)" in code
    assert "~ fakepkg  1.0 → 2.0" in code
    assert f"-    return {BODY}" in code and f"+    return {EDITED_BODY}" in code
    assert "@@" in code
    assert "~ offset: 0 → 1" in out
    step = Client().get_pipeline_run(history["edited"]).steps["transform"]
    previous = Client().get_pipeline_run(history["unchanged"]).steps["transform"]
    old, new = previous.inputs["x"].content_hash[:12], step.inputs["x"].content_hash[:12]
    assert f"~ x: content {old} → {new}  (from load.output" in out


def test_parameter_change_alone(history: dict[str, str]) -> None:
    out = invoke("runs", "explain", history["edited"], "load").output
    assert "in: parameters." in out
    assert "~ value: 1 → 2" in out
    assert "code" not in out.split("\n", 2)[2]


def test_second_invocation_of_a_step_by_its_id(history: dict[str, str]) -> None:
    out = invoke("runs", "explain", history["edited"], "report_2").output
    assert "report_2 (step report) in run" in out
    assert "in: inputs." in out and "from transform.output" in out


def test_cache_hit_names_where_the_outputs_came_from(history: dict[str, str]) -> None:
    out = invoke("runs", "explain", history["unchanged"], "transform").output
    assert f"transform in run {history['unchanged']}: cached" in out
    assert f"Cache hit: reused the outputs of step 'transform' in run '{history['first']}'" in out


def test_disabled_cache_and_first_run(history: dict[str, str]) -> None:
    disabled = invoke("runs", "explain", history["unchanged"], "audit").output
    assert "caching was disabled for this step" in disabled
    first = invoke("runs", "explain", history["first"], "load").output
    assert "no earlier run of this step" in first


def test_json_has_stable_keys(history: dict[str, str]) -> None:
    result = invoke("runs", "explain", history["edited"], "transform", "--json")
    data = json.loads(result.output)
    assert set(data) == {
        "run_id",
        "run_name",
        "step",
        "step_name",
        "step_run_id",
        "status",
        "cached",
        "reason",
        "summary",
        "step_function",
        "cached_from",
        "compared_with",
        "diff",
        "missing_outputs",
    }
    assert data["reason"] == "key_changed" and data["cached"] is False
    assert set(data["diff"]) == {
        "functions",
        "source_diff",
        "packages",
        "parameters",
        "inputs",
        "outputs",
        "settings",
        "other",
        "parts",
    }
    assert data["diff"]["parameters"] == [
        {"name": "offset", "change": "changed", "old": 0, "new": 1}
    ]
    assert data["diff"]["packages"] == [
        {"name": "fakepkg", "change": "changed", "old": "1.0", "new": "2.0"}
    ]
    assert data["diff"]["inputs"][0]["producer"] == "load.output"
    assert data["compared_with"]["run_name"] == history["unchanged"]
    cached = json.loads(invoke("runs", "explain", "latest", "load", "--json").output)
    assert cached["run_name"] == history["edited"]


def test_unknown_run_exits_2_naming_it(history: dict[str, str]) -> None:
    code, _, err = run_main("runs", "explain", "no-such-run", "load")
    assert code == 2
    assert err.startswith("Error: ") and "'no-such-run'" in err
    assert "Traceback" not in err


def test_unknown_step_exits_2_listing_the_steps(history: dict[str, str]) -> None:
    code, _, err = run_main("runs", "explain", history["edited"], "trian")
    assert code == 2
    assert "'trian'" in err and history["edited"] in err
    assert "load, transform, audit, report, report_2" in err


def test_help_has_a_summary_and_an_example() -> None:
    result = invoke("runs", "explain", "--help")
    assert result.exit_code == 0
    assert "Usage: cli runs explain [OPTIONS] RUN STEP" in result.output
    assert "Explain why STEP of RUN was or was not a cache hit" in result.output
    assert "Example: mlzen runs explain latest train" in result.output
    assert "--json" in result.output


def test_command_module_imports_nothing_heavy() -> None:
    probe = "import sys, json, mlzen.cli.explain; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = {name.split(".")[0] for name in json.loads(out.stdout)}
    assert not loaded & {"sqlalchemy", "pandas", "numpy", "rich", "yaml", "pyarrow"}
