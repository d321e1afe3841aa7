"""``@pipeline``: tracing step calls into a ``PipelineSpec`` (building only, never running)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import pytest

from mlzen.errors import (
    ConfigError,
    DuplicateOutputError,
    MissingInputError,
    MlzenError,
    ParameterError,
    PipelineDefinitionError,
    PlaceholderMisuseError,
    UnknownInputError,
)
from mlzen.pipelines import Pipeline, RunConfig, StepOverrides, pipeline
from mlzen.spec import InputRef, OutputSpec, PipelineSpec
from mlzen.steps import Step, active_tracer, step

# --- steps used by the pipelines below ----------------------------------------------


@step
def load(rows: int = 10) -> Annotated[list, "raw"]:
    return list(range(rows))


@step
def split(
    df: list, test_size: float = 0.2
) -> tuple[Annotated[list, "train"], Annotated[list, "test"]]:
    cut = int(len(df) * (1 - test_size))
    return df[:cut], df[cut:]


@step(retries=2, retry_delay=0.5, settings={"gpu": 1}, extra={"owner": "ml"})
def train(train: list, C: float = 1.0) -> Annotated[dict, "model"]:
    return {"C": C, "n": len(train)}


@step
def evaluate(model: dict, test: list) -> None:
    pass


@step
def pair(a: list, b: list) -> list:
    return a + b


@step
def notify(message: str = "done") -> None:
    pass


@step
def needs(x: int, y: int) -> int:
    return x + y


@step
def collect(first: list, **more: Any) -> list:
    return first


@step
def with_object_default(x: int, tool: object = object()) -> int:  # noqa: B008
    return x


@step(enable_cache=False)
def uncached() -> int:
    return 1


@pipeline
def training(test_size: float = 0.2, C: float = 1.0):
    train_df, test_df = split(load(), test_size=test_size)
    model = train(train_df, C=C)
    evaluate(model, test_df)


def build(func: Any, *args: Any, **kwargs: Any) -> PipelineSpec:
    """Build ``func`` (a plain function) as a pipeline and return its spec."""
    spec, _ = pipeline(func).build(*args, **kwargs)
    return spec


def write(tmp_path: Path, text: str, name: str = "run.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- building -----------------------------------------------------------------------


def test_build_returns_spec_and_live_steps_and_runs_nothing() -> None:
    calls: list[int] = []

    @step
    def record() -> int:
        calls.append(1)
        return 1

    def body():
        record()

    spec, steps = pipeline(body).build()
    assert isinstance(spec, PipelineSpec)
    assert spec.name == "body"
    assert steps == {"record": record}
    assert calls == []


def test_training_pipeline_spec() -> None:
    spec, steps = training.build()

    assert list(spec.steps) == ["load", "split", "train", "evaluate"]
    assert steps == {"load": load, "split": split, "train": train, "evaluate": evaluate}
    assert spec.parameters == {"test_size": 0.2, "C": 1.0}
    assert spec.steps["load"].inputs == {}
    assert spec.steps["split"].inputs == {"df": InputRef("load", "raw")}
    assert spec.steps["train"].inputs == {"train": InputRef("split", "train")}
    assert spec.steps["evaluate"].inputs == {
        "model": InputRef("train", "model"),
        "test": InputRef("split", "test"),
    }
    assert spec.topological_order() == ["load", "split", "train", "evaluate"]


def test_step_spec_records_step_options_and_outputs() -> None:
    spec = training.build()[0]
    train_spec = spec.steps["train"]

    assert train_spec.name == "train"
    assert train_spec.source == train.source
    assert train_spec.outputs == [OutputSpec("model", "builtins.dict")]
    assert train_spec.retries == 2
    assert train_spec.retry_delay == 0.5
    assert train_spec.settings == {"gpu": 1}
    assert train_spec.extra == {"owner": "ml"}
    assert train_spec.enable_cache is True
    assert spec.steps["evaluate"].outputs == []
    assert spec.steps["split"].output_names == ["train", "test"]


def test_spec_is_json_serialisable() -> None:
    spec = training.build(C=0.5)[0]
    again = PipelineSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec


def test_pipeline_parameters_flow_into_step_parameters() -> None:
    spec = training.build(test_size=0.3, C=0.5)[0]

    assert spec.parameters == {"test_size": 0.3, "C": 0.5}
    assert spec.steps["split"].parameters == {"test_size": 0.3}
    assert spec.steps["train"].parameters == {"C": 0.5}


def test_positional_pipeline_arguments_bind_by_position() -> None:
    spec = training.build(0.4, 2.0)[0]
    assert spec.parameters == {"test_size": 0.4, "C": 2.0}


def test_step_default_values_are_recorded_as_parameters() -> None:
    spec = training.build()[0]
    assert spec.steps["load"].parameters == {"rows": 10}
    assert spec.steps["split"].parameters == {"test_size": 0.2}


def test_non_json_default_is_left_to_the_function() -> None:
    spec = build(lambda: with_object_default(1))
    assert spec.steps["with_object_default"].parameters == {"x": 1}


def test_literal_values_passed_to_steps_are_parameters() -> None:
    def body():
        load(rows=3)
        notify("hello")

    spec = build(body)
    assert spec.steps["load"].parameters == {"rows": 3}
    assert spec.steps["notify"].parameters == {"message": "hello"}


def test_json_parameters_of_every_kind() -> None:
    def body():
        collect([1, 2], options={"a": [1, None]}, flag=True, name="x")

    spec = build(body)
    assert spec.steps["collect"].parameters == {
        "first": [1, 2],
        "options": {"a": [1, None]},
        "flag": True,
        "name": "x",
    }


def test_kwargs_step_accepts_extra_artifact_inputs() -> None:
    def body():
        collect(load(), extra_input=load())

    spec = build(body)
    assert spec.steps["collect"].inputs == {
        "first": InputRef("load", "raw"),
        "extra_input": InputRef("load_2", "raw"),
    }


def test_pipeline_options() -> None:
    @pipeline(name="custom", enable_cache=False, settings={"a": 1}, extra={"team": "x"})
    def body():
        load()

    assert isinstance(body, Pipeline)
    assert body.name == "custom"
    assert body.__name__ == "body"
    spec = body.build()[0]
    assert spec.name == "custom"
    assert spec.enable_cache is False
    assert spec.settings == {"a": 1}
    assert spec.steps["load"].enable_cache is False
    assert spec.steps["load"].settings == {"a": 1}


def test_step_settings_win_over_pipeline_settings() -> None:
    @pipeline(settings={"gpu": 0, "cpu": 4})
    def body():
        train(load())

    spec = body.build()[0]
    assert spec.steps["train"].settings == {"gpu": 1, "cpu": 4}
    assert spec.steps["load"].settings == {"gpu": 0, "cpu": 4}


def test_step_with_caching_off_stays_off_in_a_cached_pipeline() -> None:
    spec = build(lambda: uncached())
    assert spec.enable_cache is True
    assert spec.steps["uncached"].enable_cache is False


def test_configured_step_copy_is_used_in_the_spec() -> None:
    fast = train.configure(retries=0, name="fast_train")

    def body():
        fast(load())

    spec, steps = pipeline(body).build()
    assert list(spec.steps) == ["load", "fast_train"]
    assert spec.steps["fast_train"].retries == 0
    assert steps["fast_train"] is fast


def test_tracer_is_cleared_after_build_even_on_error() -> None:
    def body():
        needs(1)

    with pytest.raises(MissingInputError):
        pipeline(body).build()
    assert active_tracer.get() is None
    training.build()
    assert active_tracer.get() is None
    assert load(2) == [0, 1]  # back to plain function calls


# --- invocation ids -----------------------------------------------------------------


def test_repeated_calls_get_numbered_ids() -> None:
    def body():
        load()
        load(rows=2)
        load(rows=3)

    spec, steps = pipeline(body).build()
    assert list(spec.steps) == ["load", "load_2", "load_3"]
    assert all(s.name == "load" for s in spec.steps.values())
    assert spec.steps["load_3"].parameters == {"rows": 3}
    assert steps["load_2"] is load


def test_outputs_of_repeated_calls_point_at_their_own_invocation() -> None:
    def body():
        pair(load(), load())

    spec = build(body)
    assert spec.steps["pair"].inputs == {
        "a": InputRef("load", "raw"),
        "b": InputRef("load_2", "raw"),
    }


def test_id_overrides_the_invocation_id() -> None:
    def body():
        raw = load(id="source")
        train(split(raw, id="splitter")[0], id="fit")

    spec = build(body)
    assert list(spec.steps) == ["source", "splitter", "fit"]
    assert spec.steps["splitter"].inputs == {"df": InputRef("source", "raw")}
    assert spec.steps["fit"].inputs == {"train": InputRef("splitter", "train")}
    assert spec.steps["fit"].name == "train"


def test_automatic_ids_skip_ids_taken_explicitly() -> None:
    def body():
        load(id="load_2")
        load()
        load()

    assert list(build(body).steps) == ["load_2", "load", "load_3"]


def test_duplicate_id_is_an_error_naming_the_id() -> None:
    def body():
        load(id="x")
        notify(id="x")

    with pytest.raises(PipelineDefinitionError) as info:
        build(body)
    assert "'x'" in str(info.value)
    assert "'body'" in str(info.value)
    assert info.value.step_name == "x"
    assert info.value.argument == "id"


def test_explicit_id_equal_to_an_automatic_one_is_a_duplicate() -> None:
    def body():
        load()
        notify(id="load")

    with pytest.raises(PipelineDefinitionError, match="'load'"):
        build(body)


# --- ordering edges: .after() and after= --------------------------------------------


def test_after_a_step_waits_for_its_latest_invocation() -> None:
    def body():
        load()
        load()
        notify.after(load)()

    spec = build(body)
    assert spec.steps["notify"].after == ["load_2"]
    assert spec.steps["notify"].upstream == {"load_2"}
    assert spec.topological_order()[-1] == "notify"


def test_after_an_output() -> None:
    def body():
        raw = load()
        notify.after(raw)()

    assert build(body).steps["notify"].after == ["load"]


def test_after_a_multi_output_result() -> None:
    def body():
        parts = split(load())
        notify.after(parts)()

    assert build(body).steps["notify"].after == ["split"]


def test_after_a_step_without_outputs() -> None:
    def body():
        first = notify(id="first")
        notify.after(first)(id="second")

    assert build(body).steps["second"].after == ["first"]


def test_after_several_targets() -> None:
    def body():
        raw = load()
        done = notify(id="ping")
        evaluate.after(raw, done, load)(train(raw), [])

    assert build(body).steps["evaluate"].after == ["load", "ping"]


def test_after_keyword_with_a_list() -> None:
    def body():
        raw = load()
        notify(id="first")
        notify(after=[raw, "first"])

    assert build(body).steps["notify"].after == ["load", "first"]


@pytest.mark.parametrize("kind", ["output", "step", "id"])
def test_after_keyword_with_a_single_target(kind: str) -> None:
    def body():
        raw = load()
        target = {"output": raw, "step": load, "id": "load"}[kind]
        notify(after=target)

    assert build(body).steps["notify"].after == ["load"]


def test_after_keyword_with_a_multi_letter_id_is_not_split_into_letters() -> None:
    def body():
        load(id="source")
        notify(after="source")

    assert build(body).steps["notify"].after == ["source"]


def test_after_method_and_keyword_combine() -> None:
    def body():
        load()
        notify(id="ping")
        model = train(load(id="other"))
        evaluate.after(load)(model, [], after=["ping"])

    assert build(body).steps["evaluate"].after == ["other", "ping"]


def test_after_applies_to_the_next_call_only() -> None:
    def body():
        load()
        notify.after(load)()
        notify()

    spec = build(body)
    assert spec.steps["notify"].after == ["load"]
    assert spec.steps["notify_2"].after == []


def test_pending_after_does_not_leak_into_the_next_build() -> None:
    def first():
        load()
        notify.after(load)  # never called

    def second():
        notify()

    build(first)
    assert build(second).steps["notify"].after == []


def test_after_a_step_not_called_yet_is_an_error() -> None:
    def body():
        notify.after(load)()

    with pytest.raises(PipelineDefinitionError) as info:
        build(body)
    assert "'load'" in str(info.value)
    assert "'notify'" in str(info.value)
    assert info.value.argument == "after"


def test_after_an_unknown_id_is_an_error() -> None:
    def body():
        notify(after=["ghost"])

    with pytest.raises(PipelineDefinitionError, match="'ghost'"):
        build(body)


def test_after_something_else_is_an_error() -> None:
    def body():
        notify(after=[3.5])

    with pytest.raises(PipelineDefinitionError) as info:
        build(body)
    assert "3.5" in str(info.value)
    assert info.value.argument == "after"


def test_after_is_not_an_artifact_or_parameter() -> None:
    def body():
        load()
        notify(after=[load])

    spec = build(body)
    assert spec.steps["notify"].inputs == {}
    assert spec.steps["notify"].parameters == {"message": "done"}


# --- placeholder misuse -------------------------------------------------------------


def _if(df: Any) -> None:
    if df:
        pass


def _unpack(df: Any) -> None:
    a, b = df


def _fstring(df: Any) -> None:
    f"{df}"


def _setattr(df: Any) -> None:
    df.x = 1


def _setitem(df: Any) -> None:
    df["x"] = 1


def _contains(df: Any) -> None:
    1 in df


MISUSES = {
    "if": _if,
    "attribute": lambda df: df.empty,
    "len": lambda df: len(df),
    "add": lambda df: df + 1,
    "radd": lambda df: 1 + df,
    "sub": lambda df: df - 1,
    "mul": lambda df: df * 2,
    "div": lambda df: df / 2,
    "floordiv": lambda df: df // 2,
    "mod": lambda df: df % 2,
    "pow": lambda df: df**2,
    "neg": lambda df: -df,
    "abs": lambda df: abs(df),
    "and": lambda df: df & True,
    "or": lambda df: df | True,
    "eq": lambda df: df == 1,
    "ne": lambda df: df != 1,
    "lt": lambda df: df < 1,
    "gt": lambda df: df > 1,
    "le": lambda df: df <= 1,
    "ge": lambda df: df >= 1,
    "unpack": _unpack,
    "iter": lambda df: list(df),
    "index": lambda df: df["col"],
    "fstring": _fstring,
    "str": lambda df: str(df),
    "float": lambda df: float(df),
    "int": lambda df: int(df),
    "round": lambda df: round(df),
    "setattr": _setattr,
    "setitem": _setitem,
    "contains": _contains,
    "call": lambda df: df(),
    "as_index": lambda df: [1, 2][df],
}


@pytest.mark.parametrize("misuse", MISUSES.values(), ids=MISUSES.keys())
def test_placeholder_misuse_names_the_step_and_output(misuse: Any) -> None:
    def body():
        df = load()
        misuse(df)

    with pytest.raises(PlaceholderMisuseError) as info:
        build(body)
    message = str(info.value)
    assert "step 'load'" in message
    assert "Output 'raw'" in message
    assert info.value.step_name == "load"
    assert info.value.argument == "raw"
    assert isinstance(info.value, PipelineDefinitionError)


def test_placeholder_misuse_names_the_invocation_id() -> None:
    def body():
        load()
        second = load()
        if second:
            pass

    with pytest.raises(PlaceholderMisuseError, match="step 'load_2'"):
        build(body)


def test_placeholder_misuse_of_one_of_several_outputs() -> None:
    def body():
        train_df, test_df = split(load())
        len(test_df)

    with pytest.raises(PlaceholderMisuseError) as info:
        build(body)
    assert "'test'" in str(info.value)
    assert "'split'" in str(info.value)


def test_placeholder_repr_and_identity_are_allowed() -> None:
    seen: list[str] = []

    def body():
        df = load()
        seen.append(repr(df))
        seen.append(df.output_name)
        seen.append(df.invocation_id)
        assert df is not None
        {df: 1}  # hashable

    build(body)
    assert seen == ["<output 'raw' of step 'load'>", "raw", "load"]


def test_multi_output_result_unpacks_into_placeholders() -> None:
    seen: list[Any] = []

    def body():
        result = split(load())
        seen.append(result)

    build(body)
    (result,) = seen
    assert isinstance(result, tuple)
    assert [o.output_name for o in result] == ["train", "test"]


# --- binding errors -----------------------------------------------------------------


def test_unknown_argument_names_step_and_argument() -> None:
    def body():
        load(row=3)

    with pytest.raises(UnknownInputError) as info:
        build(body)
    message = str(info.value)
    assert "'load'" in message
    assert "'row'" in message
    assert "rows" in message  # lists the real arguments
    assert info.value.step_name == "load"
    assert info.value.argument == "row"


def test_unknown_argument_names_the_invocation_id() -> None:
    def body():
        load()
        load(colour=1)

    with pytest.raises(UnknownInputError, match="'load_2'"):
        build(body)


def test_too_many_positional_arguments() -> None:
    def body():
        load(1, 2)

    with pytest.raises(UnknownInputError, match="'load'"):
        build(body)


def test_keyword_only_argument_cannot_be_given_by_position() -> None:
    @step
    def kw(x: int, *, y: int = 2) -> int:
        return x + y

    def body():
        kw(1, 5)

    with pytest.raises(UnknownInputError, match="'kw'"):
        build(body)


def test_keyword_only_arguments_by_name() -> None:
    @step
    def kw(x: int, *, y: int = 2) -> int:
        return x + y

    def body():
        kw(1, y=5)

    assert build(body).steps["kw"].parameters == {"x": 1, "y": 5}


def test_argument_given_twice_is_an_error() -> None:
    def body():
        load(3, rows=4)

    with pytest.raises(UnknownInputError) as info:
        build(body)
    assert "'rows'" in str(info.value)
    assert "twice" in str(info.value)


def test_missing_argument_names_step_and_argument() -> None:
    def body():
        needs(1)

    with pytest.raises(MissingInputError) as info:
        build(body)
    message = str(info.value)
    assert "'needs'" in message
    assert "'y'" in message
    assert info.value.step_name == "needs"
    assert info.value.argument == "y"


def test_non_json_parameter_names_step_and_argument() -> None:
    def body():
        load(rows=object())

    with pytest.raises(ParameterError) as info:
        build(body)
    message = str(info.value)
    assert "'load'" in message
    assert "'rows'" in message
    assert info.value.step_name == "load"
    assert info.value.argument == "rows"


def test_multi_output_tuple_as_one_argument_is_a_clear_error() -> None:
    def body():
        train(split(load()))

    with pytest.raises(PipelineDefinitionError) as info:
        build(body)
    message = str(info.value)
    assert "'train'" in message
    assert "not a single step output" in message
    assert "a, b = split(...)" in message
    assert info.value.argument == "train"
    assert not isinstance(info.value, ParameterError)


def test_result_of_a_step_without_outputs_as_an_argument_is_an_error() -> None:
    def body():
        done = notify()
        needs(done, 1)

    with pytest.raises(PipelineDefinitionError) as info:
        build(body)
    assert "'needs'" in str(info.value)
    assert "'x'" in str(info.value)
    assert ".after()" in str(info.value)


def test_outputs_nested_in_a_list_are_a_clear_error() -> None:
    def body():
        collect([load(), load()])

    with pytest.raises(PipelineDefinitionError) as info:
        build(body)
    assert "'collect'" in str(info.value)
    assert "'first'" in str(info.value)
    assert not isinstance(info.value, ParameterError)


def test_duplicate_output_names_are_a_definition_error() -> None:
    def twice() -> tuple[Annotated[int, "a"], Annotated[int, "a"]]:
        return 1, 2

    with pytest.raises(DuplicateOutputError):
        step(twice)


# --- whole-pipeline errors ----------------------------------------------------------


def test_pipeline_with_no_steps_is_an_error() -> None:
    @pipeline
    def empty():
        pass

    with pytest.raises(PipelineDefinitionError) as info:
        empty.build()
    assert "'empty'" in str(info.value)
    assert info.value.pipeline_name == "empty"


def test_building_a_pipeline_inside_another_is_an_error() -> None:
    @pipeline
    def inner():
        load()

    def outer():
        load()
        inner.build()

    with pytest.raises(PipelineDefinitionError) as info:
        build(outer)
    assert "'inner'" in str(info.value)
    assert "inside another pipeline" in str(info.value)


def test_calling_a_pipeline_inside_another_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlzen import client

    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a nested pipeline must not run")

    monkeypatch.setattr(client.Client, "run_pipeline", never)

    @pipeline
    def inner(x: int = 1):
        load()

    def outer():
        raw = load()
        inner(raw)

    with pytest.raises(PipelineDefinitionError, match="'inner'"):
        build(outer)


def test_wrong_pipeline_arguments() -> None:
    with pytest.raises(PipelineDefinitionError) as info:
        training.build(colour="red")
    assert "'training'" in str(info.value)
    assert "colour" in str(info.value)


def test_missing_pipeline_parameter() -> None:
    @pipeline
    def needs_rows(rows: int):
        load(rows)

    with pytest.raises(MissingInputError) as info:
        needs_rows.build()
    assert "'rows'" in str(info.value)
    assert "'needs_rows'" in str(info.value)
    assert needs_rows.build(5)[0].steps["load"].parameters == {"rows": 5}


def test_non_json_pipeline_parameter_names_pipeline_and_parameter() -> None:
    with pytest.raises(ParameterError) as info:
        training.build(C=object())
    message = str(info.value)
    assert "Pipeline 'training'" in message
    assert "'C'" in message
    assert info.value.argument == "C"


def test_cycle_through_ids_is_rejected() -> None:
    def body():
        load(id="a", after=["b"])
        load(id="b", after=["a"])

    from mlzen.errors import CycleError

    with pytest.raises(CycleError):
        build(body)


# --- run configuration (YAML and with_options) --------------------------------------


def test_with_options_returns_a_copy() -> None:
    configured = training.with_options(parameters={"C": 2.0})

    assert configured is not training
    assert isinstance(configured, Pipeline)
    assert configured.build()[0].parameters["C"] == 2.0
    assert training.build()[0].parameters["C"] == 1.0


def test_yaml_top_level_parameters(tmp_path: Path) -> None:
    path = write(tmp_path, "parameters:\n  C: 0.25\n  test_size: 0.5\n")
    spec = training.with_options(config_path=path).build()[0]

    assert spec.parameters == {"test_size": 0.5, "C": 0.25}
    assert spec.steps["train"].parameters == {"C": 0.25}
    assert spec.steps["split"].parameters == {"test_size": 0.5}


def test_yaml_parameter_fills_a_required_pipeline_parameter(tmp_path: Path) -> None:
    @pipeline
    def needs_rows(rows: int):
        load(rows)

    path = write(tmp_path, "parameters: {rows: 7}\n")
    spec = needs_rows.with_options(config_path=str(path)).build()[0]
    assert spec.steps["load"].parameters == {"rows": 7}


def test_yaml_enable_cache_and_settings(tmp_path: Path) -> None:
    path = write(tmp_path, "enable_cache: false\nsettings:\n  docker: {image: x}\n")
    spec = training.with_options(config_path=path).build()[0]

    assert spec.enable_cache is False
    assert all(s.enable_cache is False for s in spec)
    assert spec.settings == {"docker": {"image": "x"}}
    assert spec.steps["load"].settings == {"docker": {"image": "x"}}
    assert spec.steps["train"].settings == {"docker": {"image": "x"}, "gpu": 1}


def test_yaml_run_name_and_extra(tmp_path: Path) -> None:
    path = write(tmp_path, "run_name: nightly\nextra: {ticket: 7}\n")
    configured = training.with_options(config_path=path)
    assert configured.options.config.run_name == "nightly"
    assert configured.options.config.extra == {"ticket": 7}


def test_yaml_step_overrides(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
steps:
  train:
    parameters: {C: 9.0}
    enable_cache: false
    retries: 5
    settings: {gpu: 4, memory: 8}
    extra: {note: hi}
  load:
    parameters: {rows: 100}
""",
    )
    spec = training.with_options(config_path=path).build()[0]

    assert spec.steps["train"].parameters == {"C": 9.0}
    assert spec.steps["train"].enable_cache is False
    assert spec.steps["train"].retries == 5
    assert spec.steps["train"].settings == {"gpu": 4, "memory": 8}
    assert spec.steps["train"].extra == {"owner": "ml", "note": "hi"}
    assert spec.steps["load"].parameters == {"rows": 100}
    assert spec.steps["load"].enable_cache is True
    assert spec.steps["split"].retries == 0


def test_yaml_step_override_of_a_numbered_invocation(tmp_path: Path) -> None:
    def body():
        pair(load(), load())

    path = write(tmp_path, "steps:\n  load_2:\n    parameters: {rows: 2}\n")
    spec = pipeline(body).with_options(config_path=path).build()[0]
    assert spec.steps["load"].parameters == {"rows": 10}
    assert spec.steps["load_2"].parameters == {"rows": 2}


def test_step_config_can_turn_caching_back_on(tmp_path: Path) -> None:
    path = write(tmp_path, "enable_cache: false\nsteps:\n  load: {enable_cache: true}\n")
    spec = training.with_options(config_path=path).build()[0]
    assert spec.steps["load"].enable_cache is True
    assert spec.steps["train"].enable_cache is False


def test_empty_yaml_file_changes_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    assert training.with_options(config_path=path).build()[0] == training.build()[0]


def test_inline_with_options() -> None:
    spec = training.with_options(
        enable_cache=False,
        settings={"s": 1},
        parameters={"C": 3.0},
        steps={"load": {"parameters": {"rows": 1}, "retries": 1}},
        run_name="inline",
    ).build()[0]

    assert spec.enable_cache is False
    assert spec.settings == {"s": 1}
    assert spec.parameters["C"] == 3.0
    assert spec.steps["load"].parameters == {"rows": 1}
    assert spec.steps["load"].retries == 1


def _error(exc_type: type[MlzenError], tmp_path: Path, text: str, **build: Any) -> MlzenError:
    path = write(tmp_path, text)
    with pytest.raises(exc_type) as info:
        training.with_options(config_path=path).build(**build)
    return info.value


def test_unknown_top_level_key_is_an_error(tmp_path: Path) -> None:
    error = _error(ConfigError, tmp_path, "paramters:\n  C: 1\n")
    assert "'paramters'" in str(error)
    assert "run.yaml" in str(error)
    assert "parameters" in str(error)  # lists what is allowed
    assert error.key == "paramters"


def test_unknown_key_under_a_step_is_an_error(tmp_path: Path) -> None:
    error = _error(ConfigError, tmp_path, "steps:\n  train:\n    retry: 2\n")
    assert "'retry'" in str(error)
    assert "steps.train" in str(error)
    assert error.key == "retry"


def test_unknown_step_id_is_an_error(tmp_path: Path) -> None:
    error = _error(ConfigError, tmp_path, "steps:\n  trian:\n    retries: 2\n")
    assert "'trian'" in str(error)
    assert "train" in str(error)  # lists the real steps
    assert error.key == "trian"


def test_unknown_pipeline_parameter_is_an_error(tmp_path: Path) -> None:
    error = _error(ConfigError, tmp_path, "parameters:\n  gamma: 1\n")
    assert "'gamma'" in str(error)
    assert "'training'" in str(error)
    assert error.key == "gamma"


def test_unknown_step_parameter_is_an_error(tmp_path: Path) -> None:
    error = _error(ConfigError, tmp_path, "steps:\n  train:\n    parameters: {gamma: 1}\n")
    assert "'gamma'" in str(error)
    assert "'train'" in str(error)
    assert error.key == "gamma"
    assert error.step_name == "train"


def test_setting_an_artifact_input_as_a_parameter_is_an_error(tmp_path: Path) -> None:
    error = _error(ConfigError, tmp_path, "steps:\n  train:\n    parameters: {train: [1]}\n")
    assert "'train'" in str(error)
    assert "'split'" in str(error)  # the step it receives the artifact from
    assert error.key == "train"
    assert error.argument == "train"


def test_non_json_step_parameter_in_config_is_an_error() -> None:
    configured = training.with_options(steps={"train": {"parameters": {"C": object()}}})
    with pytest.raises(ParameterError, match="'C'"):
        configured.build()


def test_invalid_yaml_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, "parameters: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        training.with_options(config_path=path)
    assert "not valid YAML" in str(info.value)
    assert str(path) in str(info.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        training.with_options(config_path=path)
    assert "nope.yaml" in str(info.value)
    assert "does not exist" in str(info.value)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("parameters: [1, 2]\n", "parameters"),
        ("settings: 3\n", "settings"),
        ("enable_cache: maybe\n", "enable_cache"),
        ("run_name: [a]\n", "run_name"),
        ("steps: [train]\n", "steps"),
        ("steps:\n  train:\n    retries: -1\n", "retries"),
        ("steps:\n  train:\n    retries: two\n", "retries"),
        ("steps:\n  train:\n    retries: true\n", "retries"),
        ("steps:\n  train:\n    parameters: 5\n", "parameters"),
        ("steps:\n  train:\n    enable_cache: 0\n", "enable_cache"),
    ],
)
def test_wrongly_typed_values_are_config_errors_naming_the_key(
    tmp_path: Path, text: str, key: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        training.with_options(config_path=path)
    assert f"'{key}'" in str(info.value)
    assert info.value.key == key


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n", "steps:\n  train: 3\n"])
def test_non_mapping_config_is_an_error(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match="mapping"):
        training.with_options(config_path=path)


def test_call_arguments_win_over_yaml_parameters(tmp_path: Path) -> None:
    path = write(tmp_path, "parameters: {C: 0.25, test_size: 0.5}\n")
    spec = training.with_options(config_path=path).build(C=4.0)[0]

    assert spec.parameters == {"test_size": 0.5, "C": 4.0}
    assert spec.steps["train"].parameters == {"C": 4.0}


def test_later_with_options_wins_over_earlier(tmp_path: Path) -> None:
    first = write(tmp_path, "parameters: {C: 1.5, test_size: 0.5}\nenable_cache: false\n", "a.yaml")
    second = write(tmp_path, "parameters: {C: 2.5}\nsteps: {load: {retries: 1}}\n", "b.yaml")
    configured = training.with_options(config_path=first).with_options(config_path=second)
    spec = configured.build()[0]

    assert spec.parameters == {"test_size": 0.5, "C": 2.5}
    assert spec.enable_cache is False
    assert spec.steps["load"].retries == 1

    again = configured.with_options(enable_cache=True, parameters={"C": 3.5})
    spec = again.build()[0]
    assert spec.enable_cache is True
    assert spec.parameters["C"] == 3.5


def test_inline_options_win_over_the_file_in_the_same_call(tmp_path: Path) -> None:
    path = write(tmp_path, "parameters: {C: 1.5}\nsteps: {train: {retries: 4}}\n")
    configured = training.with_options(
        config_path=path, parameters={"C": 0.5}, steps={"train": {"enable_cache": False}}
    )
    spec = configured.build()[0]

    assert spec.parameters["C"] == 0.5
    assert spec.steps["train"].retries == 4
    assert spec.steps["train"].enable_cache is False


def test_config_step_parameters_win_over_call_values(tmp_path: Path) -> None:
    path = write(tmp_path, "steps: {train: {parameters: {C: 7.0}}}\n")
    spec = training.with_options(config_path=path).build(C=1.0)[0]
    assert spec.steps["train"].parameters == {"C": 7.0}


def test_run_config_merged_lays_other_on_top() -> None:
    base = RunConfig(
        parameters={"a": 1, "b": 2},
        enable_cache=False,
        settings={"x": 1},
        run_name="base",
        steps={"s": StepOverrides(parameters={"p": 1}, retries=2, settings={"k": 1})},
    )
    top = RunConfig(
        parameters={"b": 3},
        settings={"y": 2},
        steps={"s": StepOverrides(parameters={"q": 2}, enable_cache=True)},
    )
    merged = base.merged(top)

    assert merged.parameters == {"a": 1, "b": 3}
    assert merged.enable_cache is False  # top left it unset
    assert merged.settings == {"x": 1, "y": 2}
    assert merged.run_name == "base"
    assert merged.steps["s"] == StepOverrides(
        parameters={"p": 1, "q": 2}, enable_cache=True, retries=2, settings={"k": 1}
    )


def test_run_config_from_dict_ignores_null_values() -> None:
    config = RunConfig.from_dict({"parameters": None, "steps": {"s": {"settings": None}}})
    assert config.parameters == {}
    assert config.steps["s"].settings == {}


def test_pipeline_source_is_preserved_for_run_name() -> None:
    assert training.options.config.run_name is None
    assert training.with_options(run_name="r").options.config.run_name == "r"


def test_step_objects_in_build_result_are_steps() -> None:
    _, steps = training.build()
    assert all(isinstance(s, Step) for s in steps.values())
