"""Bad input neither crashes nor exhausts the client (issue 10, E, client side).

Each case is what a careless user (or a hostile file) hands to ``mlzen``: a YAML bomb,
parameters nested thousands deep, a wrong type in a run config, ``nan``, a NumPy array
as metadata, a syntax error, a parameter of many megabytes. Each must end in a user
error (exit 2) that names the culprit, or work, the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import String, cast, select

from mlzen import Client, log_metadata, pipeline, step
from mlzen.errors import MlzenError, ParameterError
from mlzen.store import tables
from tests.cli import run_main
from tests.faults.pipelines_for_bad_input import training

TARGET = "tests.faults.pipelines_for_bad_input:training"
#: The deepest a parameter may nest (``mlzen.parameters.MAX_DEPTH``).
MAX_DEPTH = 100

#: 353 bytes standing for 9**8 (43 million) strings through nested aliases.
YAML_BOMB = "extra:\n  a: &a [" + ",".join(['"lol"'] * 9) + "]\n"
for _level, _previous in zip("bcdefgh", "abcdefg", strict=True):
    YAML_BOMB += f"  {_level}: &{_level} [" + ",".join([f"*{_previous}"] * 9) + "]\n"
YAML_BOMB += "parameters:\n  blob: *h\n"


def nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


def run_with_memory_cap(*args: str, cwd: Path, cap: int = 1 << 30) -> subprocess.CompletedProcess:
    """``mlzen ARGS`` in a process that cannot take more than ``cap`` bytes of memory
    (so a regression fails this test instead of the machine)."""
    code = textwrap.dedent(
        f"""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))
        from mlzen.cli.main import main
        main({list(args)!r})
        """
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([*sys.path, str(Path(__file__).parents[2])]),
        },
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


# -- YAML bombs ----------------------------------------------------------------------------


def test_a_yaml_bomb_run_config_is_refused_before_it_grows(project: Path) -> None:
    config = project / "bomb.yaml"
    config.write_text(YAML_BOMB)
    assert len(YAML_BOMB) < 400

    done = run_with_memory_cap("run", TARGET, "--config", str(config), cwd=project)

    assert done.returncode == 2, done.stderr
    assert "bomb.yaml" in done.stderr and "aliases" in done.stderr
    assert "MemoryError" not in done.stderr
    assert Client().list_pipeline_runs() == []


def test_a_yaml_bomb_in_the_project_settings_is_refused(project: Path) -> None:
    # All inside a known setting, whose error message would once print it.
    levels = ["&a [" + ",".join(['"lol"'] * 9) + "]"]
    for level, previous in zip("bcdefgh", "abcdefg", strict=True):
        levels.append(f"&{level} [" + ",".join([f"*{previous}"] * 9) + "]")
    (project / ".mlzen" / "config.yaml").write_text("stack: [" + ", ".join(levels) + "]\n")

    done = run_with_memory_cap("status", cwd=project)

    assert done.returncode == 2, done.stderr
    assert "config.yaml" in done.stderr and "aliases" in done.stderr


def test_a_yaml_file_nested_thousands_deep_is_a_config_error(project: Path) -> None:
    config = project / "deep.yaml"
    config.write_text("parameters:\n  blob: " + "[" * 5000 + "]" * 5000 + "\n")

    code, _, err = run_main("run", TARGET, "--config", str(config))

    assert code == 2, err
    assert "deep.yaml" in err and "nests values deeper than" in err


# -- deep parameters ---------------------------------------------------------------------


def test_a_parameter_nested_thousands_deep_is_a_parameter_error() -> None:
    with pytest.raises(ParameterError) as info:
        training.build(blob=nested(5000))

    assert info.value.argument == "blob"
    assert info.value.max_depth == MAX_DEPTH
    assert f"deeper than {MAX_DEPTH} levels" in str(info.value)


def test_a_deep_literal_given_to_a_step_in_the_body_is_a_parameter_error() -> None:
    from tests.faults.pipelines_for_bad_input import keep

    @pipeline
    def literal():
        keep(blob=nested(5000))

    with pytest.raises(ParameterError) as info:
        literal.build()

    assert info.value.step_name == "keep" and info.value.argument == "blob"


def test_a_deep_parameter_in_a_run_config_is_a_parameter_error(project: Path) -> None:
    config = project / "deep.yaml"
    config.write_text("parameters:\n  blob: " + json.dumps(nested(MAX_DEPTH + 1)) + "\n")

    with pytest.raises(ParameterError, match="'blob'"):
        training.with_options(config_path=config).build()
    training.with_options(parameters={"blob": nested(MAX_DEPTH)}).build()  # the limit itself


def test_a_deep_parameter_on_the_command_line_is_a_user_error() -> None:
    code, _, err = run_main("run", TARGET, "-p", "blob=" + "[" * 5000 + "]" * 5000)

    assert code == 2, err
    assert "'blob'" in err and f"deeper than {MAX_DEPTH} levels" in err
    assert "Internal error" not in err


# -- wrong types in run configs --------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "where"),
    [
        ("parameters:\n  rows: abc\n", "pipeline 'training'"),
        ("steps:\n  load:\n    parameters:\n      rows: abc\n", "step 'load'"),
        ("parameters:\n  factor: [1]\n", "pipeline 'training'"),
        ("parameters:\n  rows: true\n", "pipeline 'training'"),
    ],
    ids=["pipeline", "step", "list-for-float", "bool-for-int"],
)
def test_a_wrong_type_in_a_run_config_fails_before_any_step_runs(
    project: Path, config: str, where: str
) -> None:
    path = project / "run.yaml"
    path.write_text(config)

    code, _, err = run_main("run", TARGET, "--config", str(path))

    assert code == 2, err
    assert where in err and "must be" in err
    assert Client().list_pipeline_runs() == []  # nothing ran, nothing was recorded


def test_run_config_values_of_the_declared_type_pass(project: Path) -> None:
    path = project / "run.yaml"
    path.write_text("parameters:\n  rows: 4\n  factor: 1e3\n  blob: {any: [thing]}\n")

    spec, _ = training.with_options(config_path=path).build()

    assert spec.parameters["rows"] == 4
    assert spec.parameters["factor"] == 1000.0  # YAML reads 1e3 as a string


# -- nan and inf -------------------------------------------------------------------------------


def test_nan_parameters_and_metadata_round_trip_on_every_store(store_backend: str) -> None:
    code, _, err = run_main("run", TARGET, "-p", "factor=nan")

    assert code == 0, err
    run = Client().get_pipeline_run("latest")
    assert math.isnan(run.parameters["factor"])
    assert math.isnan(run.steps["scale"].parameters["factor"])
    assert math.isnan(run.spec.steps["scale"].parameters["factor"])
    metadata = run.steps["scale"].metadata
    assert math.isnan(metadata["factor"]) and metadata["inf"] == math.inf
    total = run.steps["scale"].outputs["total"]
    assert math.isnan(total.load())
    # And it is cached like any other value.
    code, _, err = run_main("run", TARGET, "-p", "factor=nan")
    assert code == 0, err
    assert Client().get_pipeline_run("latest").steps["scale"].status == "cached"


# -- NumPy in metadata -------------------------------------------------------------------------


@step
def logs_arrays() -> int:
    log_metadata({"weights": np.arange(3), "score": np.float32(0.5), "nested": [np.int64(2)]})
    return 1


@step
def logs_a_big_array() -> int:
    log_metadata({"confusion": np.zeros((100, 100))})
    return 1


@pipeline
def array_metadata(big: bool = False):
    if big:
        logs_a_big_array()
    else:
        logs_arrays()


def test_numpy_scalars_and_small_arrays_are_recorded_as_json(store_backend: str) -> None:
    run = array_metadata()

    assert run.steps["logs_arrays"].metadata == {
        "weights": [0, 1, 2],
        "score": 0.5,
        "nested": [2],
    }


def test_a_big_array_in_metadata_is_an_error_naming_the_key(store_backend: str) -> None:
    with pytest.raises(MlzenError) as info:
        array_metadata(big=True)

    error = info.value.run.steps["logs_a_big_array"].error
    assert "Metadata 'confusion'" in error and "ndarray of shape (100, 100)" in error
    assert "artifact" in error
    with pytest.raises(MlzenError) as outside:
        log_metadata({"confusion": np.zeros((100, 100))}, run_id=info.value.run.id)
    assert outside.value.argument == "confusion"
    assert "ValueError" not in str(outside.value)


# -- a syntax error in the pipeline file -------------------------------------------------------


def test_a_syntax_error_in_the_pipeline_file_is_a_user_error(project: Path) -> None:
    path = project / "broken_pipeline.py"
    path.write_text("from mlzen import pipeline\n\n\n@pipeline\ndef p(:\n    pass\n")

    code, _, err = run_main("run", f"{path}:p")

    assert code == 2, err
    assert str(path) in err and "line 5" in err and "SyntaxError" in err
    assert "Internal error" not in err


# -- parameter size --------------------------------------------------------------------------


def test_a_parameter_over_the_size_limit_is_refused_saying_to_use_an_artifact() -> None:
    blob = "x" * (2 * 1024 * 1024)

    with pytest.raises(ParameterError) as info:
        training(blob=blob)

    assert info.value.argument == "blob"
    assert "artifact" in str(info.value) and "MLZEN_MAX_PARAMETER_BYTES" in str(info.value)
    assert Client().list_pipeline_runs() == []


def test_the_parameter_size_limit_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLZEN_MAX_PARAMETER_BYTES", "100")

    with pytest.raises(ParameterError, match="'blob'"):
        training(blob="x" * 200)
    monkeypatch.setenv("MLZEN_MAX_PARAMETER_BYTES", str(4 * 1024 * 1024))
    assert training(blob="x" * (2 * 1024 * 1024)).status == "completed"


def test_a_parameter_is_stored_no_more_times_than_needed(store_backend: str) -> None:
    marker = "needle-" + "y" * 10_000

    run = training(blob=marker)

    store = Client().store
    columns = [
        tables.pipeline_runs.c.spec,
        tables.pipeline_runs.c.parameters,
        tables.step_runs.c.parameters,
        tables.step_runs.c.cache_key_parts,
        tables.step_runs.c.config,
    ]
    with store.read() as connection:
        stored = sum(
            text.count("needle-")
            for column in columns
            for text in connection.execute(select(cast(column, String))).scalars()
        )
    # The run's parameters, the spec's step parameters and the step run's: 3, not 5.
    assert stored == 3
    keep = run.steps["keep"]
    assert keep.parameters == {"blob": marker}
    assert keep.cache_key_parts["parameters"] == {"blob": marker}
    assert run.spec.parameters["blob"] == marker
    assert training(blob=marker).steps["keep"].status == "cached"
