"""`mlzen diff RUN_A RUN_B [--artifact NAME] [--json]`."""

from __future__ import annotations

import json

import pytest

from tests.cli import invoke, run_main
from tests.unit.test_compare import data


@pytest.fixture
def two_runs():
    return data(seed=0), data(seed=1, shift=2.0, scale=2.0, c=0.5, wide=True)


def test_diff_prints_every_kind_of_change_for_people(two_runs) -> None:
    old, new = two_runs
    result = invoke("diff", old.name, new.id)
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"{old.name} → {new.name}" in out
    assert "Parameters" in out and "~ seed: 0 → 1" in out
    assert "Step settings: metadata\n  ~ c: 1.0 → 0.5" in out
    assert "table.table (table:1 → table:2): dataframe" in out
    assert "+ column z" in out and "- column y" in out and "~ count: int64 → float64" in out
    assert "psi" in out and "ks" in out and "tvd" in out
    assert "max abs difference 5" in out
    assert "+ $.seed" in out and "- $.model.kernel" in out
    assert "blob.blob (blob:1 → blob:1): identical" in out


def test_diff_json_has_stable_keys(two_runs) -> None:
    old, new = two_runs
    data_out = json.loads(invoke("diff", old.name, "latest", "--json").output)
    assert set(data_out) == {
        "old",
        "new",
        "parameters",
        "metadata",
        "steps_added",
        "steps_removed",
        "steps",
        "artifacts",
    }
    assert set(data_out["old"]) == {"id", "name", "pipeline", "status"}
    assert set(data_out["steps"][0]) == {
        "step",
        "parameters",
        "metadata",
        "code_changed",
        "changed_functions",
        "source_diff",
        "outputs_added",
        "outputs_removed",
    }
    table = next(a for a in data_out["artifacts"] if a["output"] == "table")
    assert set(table) == {
        "old",
        "new",
        "data_type_old",
        "data_type_new",
        "kind",
        "identical",
        "metadata",
        "dataframe",
        "array",
        "values",
        "model",
        "step",
        "output",
    }
    x = next(c for c in table["dataframe"]["columns"] if c["name"] == "x")
    assert set(x) == {"name", "kind", "old", "new", "psi", "ks", "tvd"}
    assert x["ks"] > 0.5 and x["tvd"] is None


def test_artifact_option_limits_the_comparison(two_runs) -> None:
    old, new = two_runs
    data_out = json.loads(
        invoke("diff", old.name, new.name, "--artifact", "weights", "--json").output
    )
    assert [a["output"] for a in data_out["artifacts"]] == ["weights"]
    assert data_out["artifacts"][0]["array"]["max_abs_diff"] == 5.0


def test_unknown_run_exits_2_naming_it(two_runs) -> None:
    code, _, err = run_main("diff", "no-such-run", "latest")
    assert code == 2 and "no-such-run" in err


def test_unknown_artifact_exits_2_naming_it_and_the_choices(two_runs) -> None:
    old, new = two_runs
    code, _, err = run_main("diff", old.name, new.name, "--artifact", "nope")
    assert code == 2 and "'nope'" in err and "weights" in err


def test_help_has_a_summary_and_an_example() -> None:
    out = invoke("diff", "--help").output
    assert "Compare two runs" in out and "Example: mlzen diff" in out
    assert "diff" in invoke("--help").output
