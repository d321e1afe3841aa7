"""``@step``: signature parsing, options, and calling a step outside a pipeline."""

from __future__ import annotations

import inspect
import pickle
from typing import Annotated, Any

import pytest

from mlzen.errors import (
    DuplicateOutputError,
    PipelineDefinitionError,
    StepDefinitionError,
)
from mlzen.steps import (
    RESERVED_ARGUMENTS,
    OutputSignature,
    Step,
    StepOptions,
    import_step,
    importable_module_name,
    parse_signature,
    step,
    type_path,
)

# --- module-level steps (importable by ``module:qualname``) -------------------------


@step
def double(x: int) -> int:
    """Twice x."""
    return 2 * x


@step(name="renamed", retries=2, enable_cache=False, settings={"gpu": 1})
def configured(x: int = 3) -> Annotated[int, "value"]:
    return x


not_a_step = 42


def outputs_of(func: Any) -> list[tuple[str, Any]]:
    return [(o.name, o.annotation) for o in step(func).signature.outputs]


# --- outputs ------------------------------------------------------------------------


def test_annotated_return_names_the_single_output() -> None:
    def load() -> Annotated[list, "raw"]:
        return []

    assert outputs_of(load) == [("raw", list)]


def test_tuple_of_annotated_is_several_named_outputs() -> None:
    def split() -> tuple[Annotated[list, "train"], Annotated[dict, "test"]]:
        return [], {}

    assert outputs_of(split) == [("train", list), ("test", dict)]


def test_unnamed_tuple_elements_are_output_output_1_output_2() -> None:
    def three() -> tuple[int, str, float]:
        return 1, "a", 1.0

    assert outputs_of(three) == [("output", int), ("output_1", str), ("output_2", float)]


def test_mixed_named_and_unnamed_tuple_elements() -> None:
    def mixed() -> tuple[Annotated[int, "count"], str]:
        return 1, "a"

    assert outputs_of(mixed) == [("count", int), ("output_1", str)]


def test_plain_return_type_is_one_output_named_output() -> None:
    def plain() -> int:
        return 1

    assert outputs_of(plain) == [("output", int)]


def test_no_return_annotation_is_one_untyped_output() -> None:
    def untyped():
        return 1

    (output,) = step(untyped).signature.outputs
    assert output.name == "output"
    assert output.type == "typing.Any"


def test_none_return_has_no_outputs() -> None:
    def sink(x: int) -> None:
        pass

    assert step(sink).signature.outputs == ()
    assert step(sink).output_names == []


def test_variadic_tuple_is_one_output() -> None:
    def many() -> tuple[int, ...]:
        return (1, 2)

    assert outputs_of(many) == [("output", tuple[int, ...])]


def test_annotated_tuple_is_one_named_output() -> None:
    def pair() -> Annotated[tuple[int, int], "pair"]:
        return 1, 2

    assert outputs_of(pair) == [("pair", tuple[int, int])]


def test_bare_tuple_is_one_output() -> None:
    def bare() -> tuple:
        return ()

    assert outputs_of(bare) == [("output", tuple)]


def test_annotated_name_is_the_first_string_extra() -> None:
    def extras() -> Annotated[int, 3, "first", "second"]:
        return 1

    assert outputs_of(extras) == [("first", int)]


def test_annotated_without_string_extra_is_unnamed() -> None:
    def no_name() -> Annotated[int, 3]:
        return 1

    assert outputs_of(no_name) == [("output", int)]


def test_duplicate_output_names_raise_naming_step_and_output() -> None:
    def twice() -> tuple[Annotated[int, "a"], Annotated[int, "a"]]:
        return 1, 2

    with pytest.raises(DuplicateOutputError) as info:
        step(twice)
    assert "'twice'" in str(info.value)
    assert "'a'" in str(info.value)
    assert info.value.step_name == "twice"
    assert info.value.argument == "a"
    assert isinstance(info.value, PipelineDefinitionError)


def test_explicit_name_colliding_with_default_name_is_a_duplicate() -> None:
    def clash() -> tuple[int, Annotated[int, "output"]]:
        return 1, 2

    with pytest.raises(DuplicateOutputError, match="'output'"):
        step(clash)


def test_output_type_is_the_dotted_path() -> None:
    assert OutputSignature("x", int).type == "builtins.int"
    assert OutputSignature("x", OutputSignature).type == "mlzen.steps.OutputSignature"
    assert OutputSignature("x", Any).type == "typing.Any"
    assert OutputSignature("x", inspect.Parameter.empty).type == "typing.Any"
    assert OutputSignature("x", list[int]).type == "list[int]"


def test_type_path_of_a_class() -> None:
    assert type_path(dict) == "builtins.dict"


def test_string_annotations_are_resolved() -> None:
    def stringly(x: int) -> Annotated[int, "n"]:
        return x

    stringly.__annotations__ = {"x": "int", "return": "Annotated[int, 'n']"}
    assert outputs_of(stringly) == [("n", int)]


def test_unresolvable_type_hint_is_a_step_definition_error() -> None:
    def broken(x: NoSuchType) -> int:  # type: ignore[name-defined]  # noqa: F821
        return 1

    with pytest.raises(StepDefinitionError) as info:
        step(broken)
    assert "'broken'" in str(info.value)
    assert "NoSuchType" in str(info.value)
    assert info.value.step_name == "broken"


# --- inputs -------------------------------------------------------------------------


def test_arguments_and_annotations_are_recorded() -> None:
    def f(a: int, b: str = "x", *, c: float = 1.0) -> int:
        return a

    signature = parse_signature(f, "f")
    assert list(signature.arguments) == ["a", "b", "c"]
    assert signature.annotations == {"a": int, "b": str, "c": float}
    assert signature.accepts_kwargs is False
    assert signature.arguments["b"].default == "x"


def test_kwargs_are_allowed_and_remembered() -> None:
    def f(a: int, **rest: Any) -> int:
        return a

    signature = parse_signature(f, "f")
    assert list(signature.arguments) == ["a"]
    assert signature.accepts_kwargs is True


@pytest.mark.parametrize("reserved", RESERVED_ARGUMENTS)
def test_reserved_argument_names_are_rejected(reserved: str) -> None:
    namespace: dict[str, Any] = {}
    exec(f"def uses_reserved({reserved}: int) -> int:\n    return 1", namespace)

    with pytest.raises(StepDefinitionError) as info:
        step(namespace["uses_reserved"])
    assert f"'{reserved}'" in str(info.value)
    assert "'uses_reserved'" in str(info.value)
    assert info.value.argument == reserved
    assert "Rename" in str(info.value)


def test_reserved_names_are_id_and_after() -> None:
    assert set(RESERVED_ARGUMENTS) == {"id", "after"}


def test_var_positional_is_rejected() -> None:
    def star(*values: int) -> int:
        return sum(values)

    with pytest.raises(StepDefinitionError) as info:
        step(star)
    assert "*values" in str(info.value)
    assert "'star'" in str(info.value)
    assert info.value.argument == "values"


def test_positional_only_arguments_are_rejected() -> None:
    # A step runs as func(**inputs): a positional-only argument could never be passed.
    def slash(x: int, /) -> int:
        return x

    with pytest.raises(StepDefinitionError) as info:
        step(slash)
    assert "'x'" in str(info.value)
    assert "'slash'" in str(info.value)
    assert info.value.argument == "x"


# --- options ------------------------------------------------------------------------


def test_bare_decorator_uses_defaults() -> None:
    assert isinstance(double, Step)
    assert double.options == StepOptions(name="double")
    assert double.name == "double"
    assert double.options.enable_cache is True
    assert double.options.retries == 0
    assert double.options.retry_delay == 1.0
    assert double.options.settings == {}
    assert double.options.extra == {}
    assert double.options.on_failure is None
    assert double.options.on_success is None


def test_decorator_options_are_recorded() -> None:
    def on_failure(**kwargs: Any) -> None:
        pass

    def on_success(**kwargs: Any) -> None:
        pass

    @step(
        name="custom",
        enable_cache=False,
        retries=3,
        retry_delay=0.5,
        settings={"resources": {"cpu": 2}},
        extra={"owner": "me"},
        on_failure=on_failure,
        on_success=on_success,
    )
    def f(x: int) -> int:
        return x

    assert f.name == "custom"
    assert f.options.enable_cache is False
    assert f.options.retries == 3
    assert f.options.retry_delay == 0.5
    assert f.options.settings == {"resources": {"cpu": 2}}
    assert f.options.extra == {"owner": "me"}
    assert f.options.on_failure is on_failure
    assert f.options.on_success is on_success


def test_decorator_copies_settings_and_extra() -> None:
    settings = {"a": 1}
    extra = {"b": 2}

    @step(settings=settings, extra=extra)
    def f() -> int:
        return 1

    settings["a"] = 99
    extra["b"] = 99
    assert f.options.settings == {"a": 1}
    assert f.options.extra == {"b": 2}


@pytest.mark.parametrize("retries", [-1, 1.5, "2", True])
def test_invalid_retries_are_rejected(retries: Any) -> None:
    with pytest.raises(StepDefinitionError) as info:

        @step(retries=retries)
        def f() -> int:
            return 1

    assert "retries" in str(info.value)
    assert "'f'" in str(info.value)
    assert info.value.argument == "retries"


def test_decorating_a_step_again_is_rejected() -> None:
    with pytest.raises(StepDefinitionError, match="plain function"):
        step(double)


def test_decorating_a_non_callable_is_rejected() -> None:
    with pytest.raises(StepDefinitionError, match="plain function"):
        step(42)  # type: ignore[call-overload]


def test_configure_returns_a_changed_copy() -> None:
    changed = configured.configure(retries=5, settings={"gpu": 2})

    assert isinstance(changed, Step)
    assert changed is not configured
    assert changed.options.retries == 5
    assert changed.options.settings == {"gpu": 2}
    assert changed.name == "renamed"
    assert changed.options.enable_cache is False
    assert changed.func is configured.func
    # the original is untouched
    assert configured.options.retries == 2
    assert configured.options.settings == {"gpu": 1}


def test_configure_can_rename() -> None:
    assert double.configure(name="twice").name == "twice"
    assert double.name == "double"


def test_configured_copy_does_not_share_settings() -> None:
    copy = configured.configure(enable_cache=True)
    copy.options.settings["gpu"] = 8
    assert configured.options.settings == {"gpu": 1}


def test_configure_unknown_option_names_it() -> None:
    with pytest.raises(StepDefinitionError) as info:
        double.configure(retires=2, colour="red")
    assert "colour" in str(info.value)
    assert "retires" in str(info.value)
    assert "'double'" in str(info.value)
    assert "retries" in str(info.value)  # lists the valid options


def test_configure_rejects_negative_retries() -> None:
    with pytest.raises(StepDefinitionError, match="retries"):
        double.configure(retries=-1)


# --- calling a step outside a pipeline ----------------------------------------------


def test_calling_outside_a_pipeline_runs_the_function() -> None:
    assert double(4) == 8
    assert double(x=5) == 10


def test_calling_outside_a_pipeline_uses_defaults() -> None:
    assert configured() == 3
    assert configured(7) == 7


def test_multi_output_step_returns_the_plain_tuple_outside_a_pipeline() -> None:
    @step
    def split(values: list) -> tuple[Annotated[list, "a"], Annotated[list, "b"]]:
        return values[:1], values[1:]

    assert split([1, 2, 3]) == ([1], [2, 3])


def test_reserved_keywords_are_ignored_outside_a_pipeline() -> None:
    assert double(3, id="first", after=[double]) == 6


def test_errors_from_the_function_propagate_unchanged_outside_a_pipeline() -> None:
    @step
    def boom() -> int:
        raise ValueError("nope")

    with pytest.raises(ValueError, match="nope"):
        boom()


def test_wrong_arguments_outside_a_pipeline_are_plain_type_errors() -> None:
    with pytest.raises(TypeError):
        double()


def test_step_keeps_the_function_metadata() -> None:
    assert double.__name__ == "double"
    assert double.__doc__ == "Twice x."
    assert double.__wrapped__ is double.func


def test_source_is_module_and_qualname() -> None:
    assert double.source == f"{__name__}:double"
    assert "double" in repr(double)
    assert double.source in repr(double)


def test_after_outside_a_pipeline_is_an_error_naming_the_step() -> None:
    with pytest.raises(PipelineDefinitionError) as info:
        double.after(configured)
    assert "'double.after(...)'" in str(info.value)
    assert info.value.step_name == "double"


# --- importing and pickling ---------------------------------------------------------


def test_import_step_finds_a_module_level_step() -> None:
    assert import_step(double.source) is double


def test_import_step_rejects_a_non_step() -> None:
    with pytest.raises(StepDefinitionError, match="not a step"):
        import_step(f"{__name__}:not_a_step")


@pytest.mark.parametrize("source", ["no_such_module_xyz:f", f"{__name__}:missing"])
def test_import_step_reports_what_cannot_be_imported(source: str) -> None:
    with pytest.raises(StepDefinitionError) as info:
        import_step(source)
    assert source in str(info.value)


def test_module_level_step_pickles_by_reference() -> None:
    assert pickle.loads(pickle.dumps(double)) is double


def test_importable_module_name_keeps_ordinary_names() -> None:
    assert importable_module_name("pkg.module") == "pkg.module"
