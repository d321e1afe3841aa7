"""What a hook is given, read from its signature; hooks named by import strings."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest

from mlzen.errors import StepDefinitionError
from mlzen.hooks import FAILURE, SUCCESS, hook_name, plan_call, resolve_hook

ERROR = KeyError("missing")
CONTEXT = object()
OFFERED = {"exception": ERROR, "context": CONTEXT}


def call(hook: Any, kind: str = FAILURE) -> Any:
    args, kwargs = plan_call(hook, kind, "s").arguments(
        OFFERED if kind == FAILURE else {"context": CONTEXT}
    )
    return hook(*args, **kwargs)


def test_keyword_hooks_written_for_earlier_versions_get_what_they_did() -> None:
    def by_name(exception, context):  # type: ignore[no-untyped-def]
        return exception, context

    def context_and_kwargs(*, context, **kwargs):  # type: ignore[no-untyped-def]
        return context, kwargs

    assert call(by_name) == (ERROR, CONTEXT)
    assert call(context_and_kwargs) == (CONTEXT, {"exception": ERROR})
    assert call(context_and_kwargs, SUCCESS) == (CONTEXT, {})
    assert call(lambda **kwargs: kwargs) == OFFERED


def test_the_exception_goes_to_the_annotated_parameter_before_the_first_one() -> None:
    def annotated_second(context, err: LookupError):  # type: ignore[no-untyped-def]
        return context, err

    def positional_only(context, err, /):  # type: ignore[no-untyped-def]
        return context, err

    def default_before(first=None, /, second=None, *, err: Exception):  # type: ignore[no-untyped-def]
        return first, second, err

    assert call(annotated_second) == (CONTEXT, ERROR)
    assert call(positional_only) == (CONTEXT, ERROR)
    assert call(default_before) == (None, None, ERROR)


def test_methods_partials_and_callable_objects_are_hooks_too() -> None:
    class Alerter:
        def alert(self, problem: BaseException) -> Any:
            return problem

        def __call__(self, e: Exception, channel: str = "#ml") -> Any:
            return e, channel

    def send(channel: str, e: BaseException) -> Any:
        return channel, e

    assert call(Alerter().alert) is ERROR
    assert call(Alerter()) == (ERROR, "#ml")
    assert call(functools.partial(send, "#ops")) == ("#ops", ERROR)


def test_a_success_hook_is_given_no_exception() -> None:
    def wants_exception(e):  # type: ignore[no-untyped-def]
        return e

    with pytest.raises(StepDefinitionError) as caught:
        plan_call(wants_exception, SUCCESS, "train")
    assert "Step 'train' on_success hook" in caught.value.message
    assert "'e'" in caught.value.message and "context=" in caught.value.message


def test_a_parameter_typed_as_something_else_is_not_given_the_exception() -> None:
    def typed(count: int):  # type: ignore[no-untyped-def]
        return count

    with pytest.raises(StepDefinitionError, match="'count'"):
        plan_call(typed, FAILURE, "s")


def test_resolving_checks_what_the_hook_is() -> None:
    assert resolve_hook(None, FAILURE, "s") is None
    assert resolve_hook("os:getcwd", SUCCESS, "s") is not None
    with pytest.raises(StepDefinitionError, match="not a function"):
        resolve_hook(3, FAILURE, "s")  # type: ignore[arg-type]
    with pytest.raises(StepDefinitionError, match="no signature"):
        resolve_hook(max, FAILURE, "s")


def test_an_import_string_whose_module_fails_to_import_names_the_hook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "broken_alerts.py").write_text("raise RuntimeError('no token')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(StepDefinitionError) as caught:
        resolve_hook("broken_alerts.notify", SUCCESS, "train")
    assert "on_success='broken_alerts.notify'" in caught.value.message
    assert "RuntimeError: no token" in caught.value.message
    assert caught.value.fields == {
        "step_name": "train",
        "argument": "on_success",
        "hook": "broken_alerts.notify",
    }


def test_hook_names_are_dotted_paths() -> None:
    assert hook_name(test_hook_names_are_dotted_paths) == (
        f"{__name__}.test_hook_names_are_dotted_paths"
    )
    assert hook_name(functools.partial(print)).startswith("functools.partial(")
