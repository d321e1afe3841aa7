"""Parameters: JSON, depth, declared types, ``-p`` text and sizes."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import pytest

from mlzen.errors import ConfigError, MlzenError, ParameterError
from mlzen.parameters import (
    MAX_DEPTH,
    check_json_parameter,
    check_sizes,
    parse_text,
    signature_hints,
    too_deep,
    typed,
)


def nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    "value", [1, 1.5, "s", None, True, [1, "a"], {"k": [1, 2]}, (1, 2), float("nan")]
)
def test_json_values_are_valid_parameters(value: Any) -> None:
    check_json_parameter("s", "a", value)


@pytest.mark.parametrize("value", [object(), {1, 2}, b"bytes", {"k": object()}, [1, object()]])
def test_non_json_values_raise_parameter_error_naming_step_and_argument(value: Any) -> None:
    with pytest.raises(ParameterError) as info:
        check_json_parameter("train", "model", value)
    message = str(info.value)
    assert "'train'" in message
    assert "'model'" in message
    assert type(value).__name__ in message
    assert info.value.step_name == "train"
    assert info.value.argument == "model"
    assert isinstance(info.value, MlzenError)


def test_depth_is_measured_without_recursion() -> None:
    assert not too_deep(nested(MAX_DEPTH))
    assert too_deep(nested(MAX_DEPTH + 1))
    assert too_deep(nested(100_000))
    assert too_deep({"a": [{"b": nested(MAX_DEPTH - 1)}]})
    assert not too_deep("scalar") and not too_deep([1, 2, 3])


def test_a_too_deep_parameter_is_a_parameter_error_with_the_limit() -> None:
    with pytest.raises(ParameterError) as info:
        check_json_parameter("p", "blob", nested(10_000), kind="Pipeline")
    assert "Pipeline 'p' argument 'blob'" in str(info.value)
    assert info.value.max_depth == MAX_DEPTH


@pytest.mark.parametrize(
    ("annotation", "value"),
    [
        (int, 3),
        (float, 3),
        (float, 2.5),
        (float, math.nan),
        (bool, False),
        (str, "x"),
        (int | None, None),
        (list[int], [1, 2]),
        (tuple[int, str], [1, "a"]),
        (tuple[int, ...], [1, 2, 3]),
        (dict[str, float], {"a": 1.0}),
        (Literal["a", "b"], "b"),
        (Annotated[int, "rows"], 4),
        (Any, object()),
        (object, [1]),
        ("NotResolvable", 1),
        (complex, "a class other than the JSON types is the function's business"),
    ],
)
def test_values_of_the_declared_type_pass(annotation: Any, value: Any) -> None:
    assert typed(annotation, value) is value


@pytest.mark.parametrize(
    ("annotation", "value", "expected"),
    [
        (int, "abc", "int"),
        (int, True, "int"),
        (int, 2.5, "int"),
        (float, "abc", "float"),
        (bool, 1, "bool"),
        (str, 1, "str"),
        (list[int], [1, "a"], "list[int]"),
        (tuple[int, str], [1], "tuple[int, str]"),
        (dict[str, int], {"a": "b"}, "dict[str, int]"),
        (dict, [1], "dict"),
        (Literal["a"], "b", "Literal['a']"),
        (int | None, "x", "int | None"),
    ],
)
def test_values_of_another_type_name_the_declared_type(
    annotation: Any, value: Any, expected: str
) -> None:
    with pytest.raises(TypeError, match=expected.replace("[", r"\[").replace("|", r"\|")):
        typed(annotation, value)


def test_yaml_number_strings_become_floats() -> None:
    assert typed(float, "1e3") == 1000.0
    assert typed(float | None, "-2.5e-1") == -0.25


@pytest.mark.parametrize(
    ("annotation", "text", "value"),
    [
        (int, "4", 4),
        (float, "nan", math.nan),
        (bool, "yes", True),
        (bool, "off", False),
        (str, "[1]", "[1]"),
        (list[int], "[1, 2]", [1, 2]),
        (Any, '{"a": 1}', {"a": 1}),
        (Any, "plain text", "plain text"),
        (int | None, "null", None),
    ],
)
def test_command_line_text_is_typed_by_the_annotation(
    annotation: Any, text: str, value: Any
) -> None:
    got = parse_text(annotation, text, owner="Pipeline 'p'", argument="x")
    assert got == value or (math.isnan(got) and math.isnan(value))


def test_command_line_text_of_another_type_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        parse_text(int, "abc", owner="Pipeline 'p'", argument="rows")
    assert str(info.value) == "Parameter 'rows' of pipeline 'p' must be int, got 'abc'."
    with pytest.raises(ConfigError, match=r"list\[int\]"):
        parse_text(list[int], '["a"]', owner="Pipeline 'p'", argument="ids")


def test_command_line_json_nested_too_deep_is_a_parameter_error() -> None:
    for depth in (MAX_DEPTH + 1, 100_000):
        text = "[" * depth + "]" * depth
        with pytest.raises(ParameterError, match=f"deeper than {MAX_DEPTH}"):
            parse_text(Any, text, owner="Pipeline 'p'", argument="blob")


def test_signature_hints_fall_back_to_the_simple_type_names() -> None:
    def resolvable(rows: int, when: float = 1.0) -> None: ...

    def unresolvable(rows: int, thing: UndefinedName) -> None:  # type: ignore[name-defined]  # noqa: F821
        ...

    assert signature_hints(resolvable) == {"rows": int, "when": float, "return": type(None)}
    hints = signature_hints(unresolvable)
    assert hints["rows"] is int and hints["thing"] is Any


def test_sizes_are_checked_per_parameter() -> None:
    check_sizes([("Step 's'", {"a": "x" * 90})], max_bytes=100)

    with pytest.raises(ParameterError) as info:
        check_sizes([("Pipeline 'p'", {"small": 1}), ("Step 's'", {"big": "x" * 200})], 100)

    assert info.value.argument == "big"
    assert info.value.size == 202 and info.value.max_bytes == 100
    assert "Step 's' argument 'big'" in str(info.value) and "artifact" in str(info.value)
