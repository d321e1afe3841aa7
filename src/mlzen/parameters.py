"""Parameters: the JSON values a run records, checked before any step runs.

Every parameter passes through here, wherever it comes from (a call in a pipeline body,
a run configuration, ``mlzen run -p``):

- :func:`check_json_parameter`: it is JSON and nests at most :data:`MAX_DEPTH` levels
  (``ParameterError``);
- :func:`typed`: a value from a run configuration or the command line has the type the
  function's signature declares (a call in Python is checked as Python checks calls:
  not at all);
- :func:`parse_text`: the text of ``-p key=value``, typed by the annotation;
- :func:`check_sizes`: each parameter of a run is at most ``max_parameter_bytes`` of
  JSON (``ParameterError`` saying to pass data as an artifact).
"""

from __future__ import annotations

import collections.abc
import inspect
import json
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from mlzen.errors import ConfigError, ParameterError

#: How deeply lists and dicts may nest in a parameter.
MAX_DEPTH = 100
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})
_SIMPLE_NAMES = {"int": int, "float": float, "bool": bool, "str": str}
_SEQUENCES = (
    list,
    tuple,
    set,
    frozenset,
    collections.abc.Sequence,
    collections.abc.MutableSequence,
    collections.abc.Collection,
    collections.abc.Iterable,
    collections.abc.Set,
)
_MAPPINGS = (dict, collections.abc.Mapping, collections.abc.MutableMapping)


def check_json_parameter(step_name: str, argument: str, value: Any, *, kind: str = "Step") -> None:
    """Raise ``ParameterError`` when ``value`` cannot be recorded as a JSON parameter.

    Args:
        step_name: the step (or pipeline) the parameter is given to.
        argument: its argument name.
        value: the value.
        kind: ``"Step"`` or ``"Pipeline"``, for the message.
    """
    if too_deep(value):
        raise ParameterError(
            f"{kind} '{step_name}' argument '{argument}' got a {type(value).__name__} nested "
            f"deeper than {MAX_DEPTH} levels, too deep to record as a parameter. Flatten it, "
            "or produce the value in a step and pass that step's output instead.",
            step_name=step_name,
            argument=argument,
            max_depth=MAX_DEPTH,
        )
    try:
        json.dumps(value, allow_nan=True)
    except (TypeError, ValueError):
        if kind == "Pipeline":
            fix = (
                "so it cannot be recorded with the run. Pass JSON values (numbers, strings, "
                "lists, dicts), or load the value inside a step."
            )
        else:
            fix = (
                "so it cannot be a parameter. Pass JSON values (numbers, strings, lists, "
                "dicts) as parameters, or produce the value in a step and pass that step's "
                "output instead."
            )
        raise ParameterError(
            f"{kind} '{step_name}' argument '{argument}' got a {type(value).__name__}, "
            f"which is not JSON-serialisable, {fix}",
            step_name=step_name,
            argument=argument,
        ) from None


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether lists and dicts nest deeper than ``limit`` levels in ``value``.

    Iterative, so that a value nested thousands deep is measured, not a RecursionError.
    """
    nested = list | tuple | dict
    pending: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, nested) else []
    while pending:
        item, depth = pending.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        # The types are collected at C speed: a long list of numbers costs no Python loop.
        if any(issubclass(kind, nested) for kind in set(map(type, children))):
            pending.extend((child, depth + 1) for child in children if isinstance(child, nested))
    return False


def signature_hints(func: Callable[..., Any]) -> dict[str, Any]:
    """The annotation of each argument of ``func``, evaluated where possible.

    An annotation that cannot be evaluated stays unchecked (``Any``), except the names
    of the simple types (``"int"``, ``"float"``, ``"bool"``, ``"str"``).
    """
    try:
        return typing.get_type_hints(func, include_extras=True)
    except Exception:
        hints: dict[str, Any] = {}
        for name, parameter in inspect.signature(func).parameters.items():
            annotation = parameter.annotation
            if isinstance(annotation, str):
                annotation = _SIMPLE_NAMES.get(annotation, Any)
            hints[name] = annotation
        return hints


def typed(annotation: Any, value: Any) -> Any:
    """``value`` if it has the type ``annotation`` declares.

    A string for a ``float`` is converted when it reads as one (YAML reads ``1e3`` as a
    string). Annotations other than the JSON types (``int``, ``float``, ``bool``,
    ``str``, ``None``, lists, tuples, dicts, their unions and ``Literal``) are not
    checked: such a value is the function's business.

    Raises:
        TypeError: it has another type; the message is the expected type.
    """
    if _matches(annotation, value):
        return value
    if _unwrapped(annotation) is float and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise TypeError(describe(annotation))


def parse_text(annotation: Any, text: str, *, owner: str, argument: str) -> Any:
    """The value of ``-p argument=text``, typed by ``annotation``.

    ``int``, ``float`` and ``bool`` (``1/0``, ``true/false``, ``yes/no``, ``on/off``) are
    parsed as such, ``str`` taken as it is, ``null`` is ``None`` where the annotation
    allows it, and anything else is read as JSON (or kept as text if it is not JSON).

    Raises:
        ConfigError: ``text`` is not a value of that type.
        ParameterError: it nests deeper than :data:`MAX_DEPTH`.
    """
    base = _unwrapped(annotation)
    try:
        if text == "null" and _matches(annotation, None):
            return None
        if base is bool:
            lowered = text.lower()
            if lowered not in TRUE_WORDS | FALSE_WORDS:
                raise TypeError(describe(annotation))
            return lowered in TRUE_WORDS
        if base in (int, float):
            return base(text)
        if base is str:
            return text
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        except RecursionError:
            raise _too_deep_text(owner, argument) from None
        if too_deep(value):
            raise _too_deep_text(owner, argument)
        return typed(annotation, value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"Parameter '{argument}' of {owner[0].lower()}{owner[1:]} must be "
            f"{describe(annotation)}, got '{shorten(text)}'.",
            key=argument,
        ) from None


def _too_deep_text(owner: str, argument: str) -> ParameterError:
    return ParameterError(
        f"{owner} argument '{argument}' got JSON nested deeper than {MAX_DEPTH} levels, too "
        "deep to record as a parameter. Flatten it, or produce the value in a step and "
        "pass that step's output instead.",
        argument=argument,
        max_depth=MAX_DEPTH,
    )


def check_config_value(owner: str, argument: str, annotation: Any, value: Any) -> Any:
    """``value`` of ``argument`` from a run configuration, checked against ``annotation``.

    Raises:
        ConfigError: it is not of the declared type; names the parameter and the type.
    """
    try:
        return typed(annotation, value)
    except TypeError:
        raise ConfigError(
            f"Parameter '{argument}' of {owner[0].lower()}{owner[1:]} in the run "
            f"configuration must be {describe(annotation)}, got {shorten(repr(value))}. Fix "
            "its value in the run configuration.",
            key=argument,
            argument=argument,
        ) from None


def check_sizes(
    parameters_by_owner: Iterable[tuple[str, Mapping[str, Any]]], max_bytes: int
) -> None:
    """Refuse a run any of whose parameters is more than ``max_bytes`` of JSON.

    Args:
        parameters_by_owner: ``("Pipeline 'training'", {...})``, ``("Step 'load'",
            {...})``: each owner's parameters.
        max_bytes: the limit (the ``max_parameter_bytes`` setting).

    Raises:
        ParameterError: names the parameter, its size and the limit, and says to pass
            the data as an artifact.
    """
    sizes: dict[int, int] = {}  # a pipeline parameter passed on to a step: measured once
    for owner, parameters in parameters_by_owner:
        for argument, value in parameters.items():
            size = sizes.get(id(value))
            if size is None:
                size = sizes[id(value)] = len(json.dumps(value, allow_nan=True).encode())
            if size > max_bytes:
                raise ParameterError(
                    f"{owner} argument '{argument}' is {size:,} bytes of JSON, more than "
                    f"the {max_bytes:,} a parameter may be (max_parameter_bytes): it "
                    "would be stored with every run and step run. Pass data as an "
                    "artifact instead: load or produce it in a step and pass that step's "
                    "output, or raise MLZEN_MAX_PARAMETER_BYTES.",
                    argument=argument,
                    size=size,
                    max_bytes=max_bytes,
                )


def describe(annotation: Any) -> str:
    """``annotation`` as a user writes it: ``int``, ``list[str]``, ``float | None``."""
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def shorten(text: str, limit: int = 60) -> str:
    """``text`` cut to ``limit`` characters, so that messages never echo huge values."""
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _unwrapped(annotation: Any) -> Any:
    """The type inside ``Annotated[...]`` and ``X | None``, if there is one."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrapped(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        others = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(others) == 1:
            return _unwrapped(others[0])
    return annotation


def _matches(annotation: Any, value: Any) -> bool:
    if annotation in (inspect.Parameter.empty, Any, object) or isinstance(annotation, str):
        return True
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _matches(args[0], value)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(a, value) for a in args)
    if annotation is None or annotation is type(None):
        return value is None
    if origin is typing.Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    base = origin or annotation
    if base in _SEQUENCES:
        if not isinstance(value, list | tuple):
            return False
        if base is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            return len(args) == len(value) and all(map(_matches, args, value))
        return not args or all(_matches(args[0], item) for item in value)
    if base in _MAPPINGS:
        if not isinstance(value, dict):
            return False
        return len(args) != 2 or all(_matches(args[1], item) for item in value.values())
    return True
