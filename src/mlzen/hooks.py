"""Step hooks: what ``on_failure`` and ``on_success`` may be, and what a hook is given.

A hook is a function, or the import string of one (``"package.module.function"``, or
``"package.module:function"`` as mlzen names code elsewhere), imported when the step is
defined. What it receives is read from its signature, also when the step is defined:

- a failure hook gets the step's exception in the parameter annotated with
  ``BaseException`` (or a subclass), else in its first positional parameter, whatever
  either is called;
- any hook gets ``context=`` (the ``StepContext``) and a failure hook ``exception=``
  when it has parameters of those names, and both in its ``**kwargs``.

A hook with a required parameter none of this fills, a missing import or a value that is
not callable is a ``StepDefinitionError`` naming the hook, raised by ``@step`` itself.
"""

from __future__ import annotations

import importlib
import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mlzen.errors import StepDefinitionError

FAILURE, SUCCESS = "on_failure", "on_success"
EXCEPTION, CONTEXT = "exception", "context"
#: What each kind of hook may be given, by the name it is offered under.
OFFERED = {FAILURE: (EXCEPTION, CONTEXT), SUCCESS: (CONTEXT,)}
Hook = Callable[..., Any]

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def hook_name(hook: Any) -> str:
    """``module.qualname`` of a hook, for messages and records."""
    qualname = getattr(hook, "__qualname__", None) or getattr(hook, "__name__", None)
    if qualname is None:
        return repr(hook)
    module = getattr(hook, "__module__", None)
    return f"{module}.{qualname}" if module else str(qualname)


def resolve_hook(hook: Hook | str | None, kind: str, step_name: str) -> Hook | None:
    """The hook function ``hook`` names, checked against what a ``kind`` hook is given.

    Raises:
        StepDefinitionError: an import string that cannot be imported, a value that is
            not callable, or a signature mlzen cannot call.
    """
    if hook is None:
        return None
    function = _import_hook(hook, kind, step_name) if isinstance(hook, str) else hook
    if not callable(function):
        raise StepDefinitionError(
            f"Step '{step_name}' has {kind}={hook!r}, which is not a function. Pass a "
            "function, or its import string 'package.module.function'.",
            step_name=step_name,
            argument=kind,
        )
    plan_call(function, kind, step_name)
    return function


def _import_hook(path: str, kind: str, step_name: str) -> Hook:
    if ":" in path:
        module_name, _, qualname = path.partition(":")
    else:
        module_name, _, qualname = path.rpartition(".")
    try:
        if not module_name or not qualname:
            raise ImportError("it names no module")
        found: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            found = getattr(found, part)
    except Exception as exc:  # importing runs the module's code: anything may go wrong
        reason = f"{type(exc).__name__}: {exc}" if not isinstance(exc, ImportError) else str(exc)
        raise StepDefinitionError(
            f"Step '{step_name}' has {kind}='{path}', which cannot be imported ({reason}). "
            "Give the hook as 'package.module.function' of a module importable from here "
            "(check the spelling and PYTHONPATH), or pass the function itself.",
            step_name=step_name,
            argument=kind,
            hook=path,
        ) from exc
    return typing.cast(Hook, found)


@dataclass(frozen=True)
class HookCall:
    """How to call one hook: which offered value goes to which of its parameters."""

    positional: tuple[tuple[str | None, Any], ...]
    """``(offered name, default)`` per positional-only argument; the default when ``None``."""
    keywords: tuple[tuple[str, str], ...]
    """``(parameter, offered name)`` per argument passed by keyword."""
    extra: tuple[str, ...]
    """Offered names passed on to the hook's ``**kwargs``."""

    def arguments(self, offered: Mapping[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """``(args, kwargs)`` for the hook, from the values offered by name."""
        args = [default if name is None else offered[name] for name, default in self.positional]
        kwargs = {parameter: offered[name] for parameter, name in self.keywords}
        kwargs.update((name, offered[name]) for name in self.extra)
        return args, kwargs


def plan_call(hook: Hook, kind: str, step_name: str) -> HookCall:
    """How to call ``hook`` as a ``kind`` hook (see the module docstring).

    Raises:
        StepDefinitionError: its signature cannot be read, or it has a required
            parameter nothing is offered for.
    """
    offered = OFFERED[kind]
    name = hook_name(hook)
    try:
        parameters = list(inspect.signature(hook).parameters.values())
    except (TypeError, ValueError) as exc:
        raise StepDefinitionError(
            f"Step '{step_name}' {kind} hook '{name}' has no signature mlzen can read "
            f"({exc}). Wrap it in a plain function.",
            step_name=step_name,
            argument=kind,
            hook=name,
        ) from exc
    try:
        hints = typing.get_type_hints(hook)
    except Exception:  # annotations that cannot be evaluated count as absent
        hints = {}
    named = [p for p in parameters if p.kind not in _VARIADIC]
    filled = {p.name: p.name for p in named if p.name in offered}
    if EXCEPTION in offered and EXCEPTION not in filled.values():
        annotated = [p for p in named if p.name not in filled and _is_exception(hints.get(p.name))]
        positional = [p for p in named if p.name not in filled and p.kind in _POSITIONAL]
        if annotated:
            filled[annotated[0].name] = EXCEPTION
        elif positional and hints.get(positional[0].name, Any) is Any:
            filled[positional[0].name] = EXCEPTION
    for parameter in named:
        if parameter.name not in filled and parameter.default is parameter.empty:
            raise StepDefinitionError(
                f"Step '{step_name}' {kind} hook '{name}' needs an argument "
                f"'{parameter.name}', which mlzen does not give. {_what_is_given(kind)} "
                f"Give '{parameter.name}' a default, or remove it.",
                step_name=step_name,
                argument=kind,
                hook=name,
            )
    given_by_name = {p.name for p in named}
    only_positional = [p for p in named if p.kind is inspect.Parameter.POSITIONAL_ONLY]
    last = max((i for i, p in enumerate(only_positional) if p.name in filled), default=-1)
    return HookCall(
        positional=tuple((filled.get(p.name), p.default) for p in only_positional[: last + 1]),
        keywords=tuple(
            (p.name, filled[p.name])
            for p in named
            if p.name in filled and p.kind is not inspect.Parameter.POSITIONAL_ONLY
        ),
        extra=tuple(o for o in offered if o not in given_by_name)
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
        else (),
    )


def _is_exception(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseException)


def _what_is_given(kind: str) -> str:
    if kind == FAILURE:
        return (
            "A failure hook is given the step's exception (in the parameter annotated "
            "BaseException, or its first one) and context= by that name."
        )
    return "A success hook is given context= by that name, nothing else."
