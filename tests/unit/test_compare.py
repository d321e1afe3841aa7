"""``mlzen.compare`` and ``Client.compare_runs`` on real runs built to differ in one way each."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import pytest

import mlzen
from mlzen import Client, log_metadata, pipeline, step
from mlzen.comparison import compare_arrays, deep_diff, ks_statistic, psi
from mlzen.errors import NotFoundError
from tests.unit.test_explain import make_history


@step
def table(
    seed: int = 0, shift: float = 0.0, wide: bool = False
) -> Annotated[pd.DataFrame, "table"]:
    """``x`` moves by ``shift``, ``y`` never does; ``wide`` changes the schema."""
    rng = np.random.default_rng(seed)
    rows = 2000
    colours = rng.choice(["red", "blue"], size=rows, p=[0.8, 0.2] if shift else [0.5, 0.5])
    frame = pd.DataFrame(
        {
            "x": rng.normal(shift, 1.0, rows),
            "y": rng.normal(0.0, 1.0, rows),
            "colour": colours,
            "count": np.arange(rows),
        }
    )
    if wide:
        frame["count"] = frame["count"].astype("float64")
        frame["z"] = 1.0
        frame = frame.drop(columns=["y"])
    return frame


@step
def weights(scale: float = 1.0) -> Annotated[np.ndarray, "weights"]:
    return np.arange(6, dtype="float64").reshape(2, 3) * scale


@step
def settings(c: float = 1.0, wide: bool = False) -> Annotated[dict, "settings"]:
    log_metadata({"c": c})
    value: dict = {"model": {"C": c, "kernel": "rbf"}, "layers": [8, 4]}
    if wide:
        value["layers"].append(2)
        value["seed"] = 7
        del value["model"]["kernel"]
    return value


@step
def blob(tag: str = "a") -> Annotated[bytes, "blob"]:
    return tag.encode()


@pipeline
def data(
    seed: int = 0,
    shift: float = 0.0,
    wide: bool = False,
    scale: float = 1.0,
    c: float = 1.0,
    tag: str = "a",
):
    table(seed=seed, shift=shift, wide=wide)
    weights(scale=scale)
    settings(c=c, wide=wide)
    blob(tag=tag)


@pipeline
def data_without_blob(seed: int = 0):
    table(seed=seed)
    weights()
    settings()


def output(run: mlzen.PipelineRun, step_id: str, name: str) -> mlzen.ArtifactVersion:
    return run.steps[step_id].outputs[name]


def test_ks_statistic_of_a_known_small_example() -> None:
    # ECDFs at 3: 3/3 against 1/4 → the largest gap is 0.75.
    assert ks_statistic([1.0, 2.0, 3.0], [2.5, 3.5, 4.5, 5.5]) == pytest.approx(0.75)
    assert ks_statistic([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert ks_statistic([], [1.0]) is None


def test_psi_is_zero_for_the_same_sample_and_grows_with_the_shift() -> None:
    sample = np.random.default_rng(0).normal(0, 1, 1000)
    assert psi(sample, sample) == pytest.approx(0.0)
    assert psi(sample, sample + 0.5) < psi(sample, sample + 2.0)  # type: ignore[operator]


def test_a_shifted_column_drifts_more_than_an_unshifted_one() -> None:
    base = data(seed=0)
    same = data(seed=1)
    shifted = data(seed=1, shift=2.0)
    unshifted_diff = mlzen.compare(output(base, "table", "table"), output(same, "table", "table"))
    shifted_diff = mlzen.compare(output(base, "table", "table"), output(shifted, "table", "table"))
    assert shifted_diff.kind == "dataframe" and not shifted_diff.identical
    unshifted = {c.name: c for c in unshifted_diff.dataframe.columns}  # type: ignore[union-attr]
    columns = {c.name: c for c in shifted_diff.dataframe.columns}  # type: ignore[union-attr]
    x, y = columns["x"], columns["y"]
    assert x.kind == "numeric" and x.psi is not None and x.ks is not None
    assert x.psi > 1.0 > unshifted["x"].psi  # type: ignore[operator]
    assert x.ks > 0.5 > unshifted["x"].ks  # type: ignore[operator]
    assert x.psi > y.psi and x.ks > y.ks  # type: ignore[operator]
    assert x.new.mean - x.old.mean == pytest.approx(2.0, abs=0.1)  # type: ignore[operator]
    colour = columns["colour"]
    assert colour.kind == "categorical" and colour.psi is None
    assert colour.tvd == pytest.approx(0.3, abs=0.05)
    assert unshifted["colour"].tvd < 0.05  # type: ignore[operator]
    assert shifted_diff.dataframe.rows_old == shifted_diff.dataframe.rows_new == 2000  # type: ignore[union-attr]


def test_schema_changes_are_named() -> None:
    narrow, wide = data(), data(wide=True)
    frame = mlzen.compare(output(narrow, "table", "table"), output(wide, "table", "table"))
    assert frame.dataframe is not None
    assert frame.dataframe.added_columns == ["z"]
    assert frame.dataframe.removed_columns == ["y"]
    assert [(c.name, c.old, c.new) for c in frame.dataframe.dtype_changes] == [
        ("count", "int64", "float64")
    ]
    assert frame.to_dict()["dataframe"]["added_columns"] == ["z"]


def test_arrays_compare_shape_dtype_statistics_and_largest_gap() -> None:
    one, two = data(), data(scale=2.0)
    diff = mlzen.compare(output(one, "weights", "weights"), output(two, "weights", "weights"))
    assert diff.kind == "array" and diff.array is not None
    assert diff.array.shape_old == diff.array.shape_new == [2, 3]
    assert diff.array.max_abs_diff == 5.0
    assert diff.array.old.mean == 2.5 and diff.array.new.max == 10.0  # type: ignore[union-attr]
    reshaped = compare_arrays(np.zeros((2, 3)), np.zeros(6, dtype="int32"))
    assert reshaped.max_abs_diff is None and reshaped.dtype_new == "int32"


def test_dicts_get_a_deep_diff_and_metadata_changes() -> None:
    one, two = data(), data(c=0.5, wide=True)
    diff = mlzen.compare(output(one, "settings", "settings"), output(two, "settings", "settings"))
    assert diff.kind == "json" and diff.values is not None
    assert diff.values.added == ["$.layers[2]", "$.seed"]
    assert diff.values.removed == ["$.model.kernel"]
    assert [(c.name, c.old, c.new) for c in diff.values.changed] == [("$.model.C", 1.0, 0.5)]
    assert deep_diff([1, "a"], (1, "b")).changed[0].name == "$[1]"
    assert [(c.name, c.old, c.new) for c in diff.metadata] == [("length", 2, 3)]


def test_other_types_compare_content_hashes_without_loading() -> None:
    one, same, other = data(), data(seed=1), data(tag="b")
    assert mlzen.compare(output(one, "blob", "blob"), output(same, "blob", "blob")).identical
    different = mlzen.compare(output(one, "blob", "blob"), output(other, "blob", "blob"))
    assert different.kind == "opaque" and not different.identical
    assert different.values is None and different.dataframe is None


def test_compare_runs_reports_parameters_steps_and_every_shared_output() -> None:
    old = data_without_blob(seed=0)
    new = data(seed=1, shift=2.0)
    diff = Client().compare_runs(old, new.name)
    assert [(c.name, c.change) for c in diff.parameters][:1] == [("seed", "changed")]
    assert {c.name for c in diff.parameters if c.change == "added"} >= {"shift", "tag"}
    assert diff.steps_added == ["blob"] and diff.steps_removed == []
    table_step = next(s for s in diff.steps if s.step == "table")
    assert {c.name for c in table_step.parameters} >= {"seed"}
    assert not table_step.code_changed
    by_output = {(a.step, a.output): a for a in diff.artifacts}
    assert set(by_output) == {("table", "table"), ("weights", "weights"), ("settings", "settings")}
    assert by_output[("weights", "weights")].identical  # same parameters: same content
    assert by_output[("weights", "weights")].array is None
    assert by_output[("table", "table")].dataframe is not None
    data_dict = diff.to_dict()
    assert set(data_dict) == {
        "old",
        "new",
        "parameters",
        "metadata",
        "steps_added",
        "steps_removed",
        "steps",
        "artifacts",
    }
    only = Client().compare_runs(old, new, artifact="table")
    assert [a.output for a in only.artifacts] == ["table"]


def test_compare_runs_names_an_unknown_artifact() -> None:
    one, two = data(), data(seed=1)
    with pytest.raises(NotFoundError, match="'nope'") as raised:
        Client().compare_runs(one, two, artifact="nope")
    assert "table" in str(raised.value)


def test_compare_runs_shows_the_step_source_diff(project: Path) -> None:
    history = make_history(project)
    diff = Client().compare_runs(history["first"], history["edited"])
    transform = next(s for s in diff.steps if s.step == "transform")
    assert transform.code_changed
    assert "+    return shift(scale(x))" in transform.source_diff
    assert "helpers:scale" in transform.changed_functions
    load = next(s for s in diff.steps if s.step == "load")
    assert not load.code_changed and load.source_diff == ""


def test_mlzen_compare_stays_the_function_after_the_module_is_imported() -> None:
    import mlzen.comparison

    assert mlzen.compare is mlzen.comparison.compare


def test_nulls_are_counted_and_the_dict_is_strict_json() -> None:
    import json

    from mlzen.comparison import ArtifactDiff, compare_frames

    old = pd.DataFrame({"v": [1.0, 2.0, np.nan], "when": pd.to_datetime(["2026-01-01"] * 3)})
    new = pd.DataFrame({"v": [np.nan, np.nan, np.nan], "when": pd.to_datetime(["2026-01-02"] * 3)})
    frame = compare_frames(old, new)
    v, when = frame.columns
    assert (v.old.nulls, v.new.nulls, v.new.mean, v.psi, v.ks) == (1, 3, None, None, None)
    assert when.kind == "other" and when.psi is None
    diff = ArtifactDiff("a:1", "a:2", "x", "x", "dataframe", False, dataframe=frame)
    gaps = compare_arrays(np.array([1.0, np.nan]), np.array([1.0, 2.0]))
    assert gaps.max_abs_diff is not None and np.isnan(gaps.max_abs_diff)
    json.dumps(diff.to_dict(), allow_nan=False)


def test_a_cache_hit_compares_with_the_metadata_its_origin_logged() -> None:
    first = data(seed=0)
    second = data(seed=1)  # `settings` has the same inputs: a cache hit logging nothing
    assert second.steps["settings"].status == "cached"
    assert second.steps["settings"].metadata == {}
    diff = Client().compare_runs(first, second)
    settings_diff = next(s for s in diff.steps if s.step == "settings")
    assert settings_diff.metadata == []  # not "c removed"


def test_a_cache_hit_whose_origin_run_was_deleted_compares_without_metadata() -> None:
    first = data(seed=0)
    second = data(seed=1)
    third = data(seed=2)
    client = Client()
    client.store.delete_run(first.id)  # the run `settings` of the later runs reused
    diff = client.compare_runs(second, third)
    settings_diff = next(s for s in diff.steps if s.step == "settings")
    assert settings_diff.metadata == []
