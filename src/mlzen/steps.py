"""``@step``: a plain Python function becomes a pipeline step.

The function's signature is parsed once, at decoration time: arguments become inputs
(artifacts, when another step's output is passed) or parameters (JSON values), and the
return annotation names the outputs.  Called outside a pipeline a step is just its
function; called while a pipeline is being traced it records an invocation instead.
"""

from __future__ import annotations

import functools
import inspect
import sys
import typing
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Protocol, overload

from mlzen.errors import DuplicateOutputError, PipelineDefinitionError, StepDefinitionError
from mlzen.hooks import FAILURE, SUCCESS, Hook, resolve_hook
from mlzen.model import Model
from mlzen.names import name_problem

RESERVED_ARGUMENTS = ("id", "after")


def importable_module_name(module_name: str) -> str:
    """The name under which another process can import ``module_name``.

    A script run as ``python train.py`` is ``__main__`` here but ``train`` elsewhere.
    """
    if module_name != "__main__":
        return module_name
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name:
        return str(spec.name)
    path = getattr(main, "__file__", None)
    return Path(path).stem if path else module_name


def type_path(annotation: Any) -> str:
    """Dotted path of a type annotation, e.g. ``pandas.core.frame.DataFrame``."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return "typing.Any"
    if isinstance(annotation, type):
        return f"{annotation.__module__}.{annotation.__qualname__}"
    return repr(annotation)


@dataclass(frozen=True)
class OutputSignature:
    """An output of a step: its name and declared type."""

    name: str
    annotation: Any

    @property
    def type(self) -> str:
        return type_path(self.annotation)


@dataclass(frozen=True)
class StepSignature:
    """What mlzen reads from a step function's signature."""

    arguments: dict[str, inspect.Parameter]
    annotations: dict[str, Any]
    outputs: tuple[OutputSignature, ...]
    accepts_kwargs: bool = False


def _output_name(annotation: Any) -> tuple[Any, str | None]:
    if typing.get_origin(annotation) is Annotated:
        base, *extras = typing.get_args(annotation)
        names = [e for e in extras if isinstance(e, str)]
        return base, (names[0] if names else None)
    return annotation, None


def parse_signature(func: Callable[..., Any], step_name: str) -> StepSignature:
    """Read inputs, parameters and outputs from ``func``'s signature and type hints."""
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception as exc:
        raise StepDefinitionError(
            f"Step '{step_name}' has type hints that cannot be evaluated: {exc}. "
            "Import every name used in its annotations at module level.",
            step_name=step_name,
        ) from exc
    signature = inspect.signature(func)
    arguments: dict[str, inspect.Parameter] = {}
    accepts_kwargs = False
    for name, param in signature.parameters.items():
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            raise StepDefinitionError(
                f"Step '{step_name}' takes *{name}; steps need named arguments so each "
                "input can be tracked. Replace it with a list parameter.",
                step_name=step_name,
                argument=name,
            )
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            accepts_kwargs = True
            continue
        if param.kind is inspect.Parameter.POSITIONAL_ONLY:
            # A step runs as func(**inputs, **parameters): every argument needs a name.
            raise StepDefinitionError(
                f"Step '{step_name}' takes '{name}' as a positional-only argument (before "
                "'/'); mlzen passes inputs by name when it runs a step. Remove the '/'.",
                step_name=step_name,
                argument=name,
            )
        if name in RESERVED_ARGUMENTS:
            raise StepDefinitionError(
                f"Step '{step_name}' has an argument named '{name}', which mlzen reserves "
                f"for step calls ({', '.join(RESERVED_ARGUMENTS)}). Rename the argument.",
                step_name=step_name,
                argument=name,
            )
        arguments[name] = param
    returns = hints.get("return", inspect.Parameter.empty)
    return StepSignature(
        arguments=arguments,
        annotations={k: v for k, v in hints.items() if k != "return"},
        outputs=_parse_outputs(returns, step_name),
        accepts_kwargs=accepts_kwargs,
    )


def _parse_outputs(returns: Any, step_name: str) -> tuple[OutputSignature, ...]:
    if returns is None or returns is type(None):
        return ()
    if returns is inspect.Parameter.empty:
        return (OutputSignature("output", Any),)
    base, name = _output_name(returns)
    args = typing.get_args(base)
    is_multi = (
        name is None
        and typing.get_origin(base) is tuple
        and args
        and not (len(args) == 2 and args[1] is Ellipsis)
    )
    if not is_multi:
        _check_output_name(step_name, name or "output")
        return (OutputSignature(name or "output", base),)
    outputs: list[OutputSignature] = []
    for index, element in enumerate(args):
        element_base, element_name = _output_name(element)
        default = "output" if index == 0 else f"output_{index}"
        outputs.append(OutputSignature(element_name or default, element_base))
    seen: set[str] = set()
    for output in outputs:
        _check_output_name(step_name, output.name)
        if output.name in seen:
            raise DuplicateOutputError(
                f"Step '{step_name}' declares two outputs named '{output.name}'. "
                "Give each element of the returned tuple its own Annotated name.",
                step_name=step_name,
                argument=output.name,
            )
        seen.add(output.name)
    return tuple(outputs)


def _check_output_name(step_name: str, name: str) -> None:
    problem = name_problem(name)
    if problem is not None:
        raise StepDefinitionError(
            f"Step '{step_name}' names an output {name!r}, which cannot be recorded as an "
            f"artifact name: {problem}. Use 1 to 255 characters without '/', '\\', '..' "
            "or control characters.",
            step_name=step_name,
            argument=name,
        )


class Tracer(Protocol):
    """Receives step calls made while a pipeline function is being traced."""

    def add_invocation(self, step: Step, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any: ...


active_tracer: ContextVar[Tracer | None] = ContextVar("mlzen_active_tracer", default=None)


@dataclass
class StepOptions:
    """Options set with ``@step(...)`` or ``Step.configure``."""

    name: str
    enable_cache: bool = True
    retries: int = 0
    retry_delay: float = 1.0
    settings: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    on_failure: Hook | None = None
    on_success: Hook | None = None
    model: Model | None = None


class Step:
    """A function turned into a pipeline step by ``@step``."""

    # The tracer (pipeline being built) that ``_pending_after`` belongs to, so pending
    # ``.after()`` targets never leak into another build. A class default, so a Step
    # restored without ``__init__`` has it too.
    _pending_tracer: Tracer | None = None

    def __init__(self, func: Callable[..., Any], options: StepOptions) -> None:
        self.func = func
        self.options = options
        self.signature = parse_signature(func, options.name)
        self._pending_after: list[Any] = []
        functools.update_wrapper(self, func)

    @property
    def name(self) -> str:
        return self.options.name

    @property
    def source(self) -> str:
        """``module:qualname`` by which a worker process can import this step."""
        return f"{importable_module_name(self.func.__module__)}:{self.func.__qualname__}"

    @property
    def output_names(self) -> list[str]:
        return [output.name for output in self.signature.outputs]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        tracer = active_tracer.get()
        if tracer is None:
            for reserved in RESERVED_ARGUMENTS:
                kwargs.pop(reserved, None)
            return self.func(*args, **kwargs)
        pending, pending_tracer = self._pending_after, self._pending_tracer
        self._pending_after, self._pending_tracer = [], None
        if pending and pending_tracer is tracer:
            kwargs["after"] = [*pending, *after_list(kwargs.pop("after", None))]
        return tracer.add_invocation(self, args, kwargs)

    def after(self, *others: Any) -> Step:
        """Make this step's next invocation in the pipeline wait for ``others``.

        ``others`` may be steps (their latest invocation), outputs of a step call, or
        invocation ids. Only meaningful inside a ``@pipeline`` function.
        """
        tracer = active_tracer.get()
        if tracer is None:
            raise PipelineDefinitionError(
                f"'{self.name}.after(...)' was called outside a pipeline. Use it inside a "
                "@pipeline function, before calling the step.",
                step_name=self.name,
            )
        if self._pending_tracer is not tracer:
            self._pending_after = []
        self._pending_after = [*self._pending_after, *others]
        self._pending_tracer = tracer
        return self

    def configure(self, **options: Any) -> Step:
        """Return a copy of this step with some ``@step`` options changed."""
        unknown = set(options) - set(StepOptions.__dataclass_fields__)
        if unknown:
            raise StepDefinitionError(
                f"Step '{self.name}' has no option {', '.join(sorted(unknown))}. "
                f"Options: {', '.join(StepOptions.__dataclass_fields__)}.",
                step_name=self.name,
            )
        merged = {**self.options.__dict__, **options}
        _check_retries(merged["name"], merged["retries"])
        merged["settings"] = dict(merged["settings"] or {})
        merged["extra"] = dict(merged["extra"] or {})
        merged["on_failure"] = resolve_hook(merged["on_failure"], FAILURE, merged["name"])
        merged["on_success"] = resolve_hook(merged["on_success"], SUCCESS, merged["name"])
        if merged["model"] is not None:
            merged["model"] = Model.parse(merged["model"], f"Step '{merged['name']}' model=")
        return Step(self.func, StepOptions(**merged))

    def __repr__(self) -> str:
        return f"<Step {self.name} ({self.source})>"

    def __reduce__(self) -> tuple[Any, ...]:
        # By reference when the step's module can be imported, so a worker process shares
        # the user's module; otherwise (e.g. defined in __main__) by value, carrying the
        # parsed signature, since its annotations may not resolve in the worker.
        if self.func.__module__ != "__main__":
            try:
                original = import_step(self.source)
            except StepDefinitionError:
                original = None
            if original is not None and original.func is self.func:
                if original.options == self.options:
                    return (import_step, (self.source,))
                return (_configured_step, (self.source, self.options))
        return (_restore_step, (self.func, self.options, self.signature))


def _configured_step(source: str, options: StepOptions) -> Step:
    return _restore_step(import_step(source).func, options, import_step(source).signature)


def _restore_step(func: Callable[..., Any], options: StepOptions, signature: StepSignature) -> Step:
    restored = Step.__new__(Step)
    restored.func = func
    restored.options = options
    restored.signature = signature
    restored._pending_after = []
    functools.update_wrapper(restored, func)
    return restored


def import_step(source: str) -> Step:
    """Import the step named by ``module:qualname``."""
    from mlzen.importing import import_object

    qualname = source.partition(":")[2]
    try:
        target = import_object(source)
    except (ImportError, AttributeError) as exc:
        raise StepDefinitionError(
            f"Cannot import step '{source}': {exc}. Make the module importable from the "
            "current folder (or PYTHONPATH) and define the step at module level.",
            step_name=qualname,
        ) from exc
    if not isinstance(target, Step):
        raise StepDefinitionError(
            f"'{source}' is a {type(target).__name__}, not a step. Decorate it with @step.",
            step_name=qualname,
        )
    return target


def after_list(after: Any) -> list[Any]:
    """The ``after=`` value of a step call as a list: one target or a list/tuple of them."""
    if after is None:
        return []
    if isinstance(after, list | tuple):
        return list(after)
    return [after]


def _check_retries(step_name: str, retries: Any) -> None:
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise StepDefinitionError(
            f"Step '{step_name}' has retries={retries!r}; use a whole number, 0 or more.",
            step_name=step_name,
            argument="retries",
        )


@overload
def step(func: Callable[..., Any], /) -> Step: ...


@overload
def step(
    *,
    name: str | None = None,
    enable_cache: bool = True,
    retries: int = 0,
    retry_delay: float = 1.0,
    settings: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    on_failure: Hook | str | None = None,
    on_success: Hook | str | None = None,
    model: Model | str | None = None,
) -> Callable[[Callable[..., Any]], Step]: ...


def step(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    enable_cache: bool = True,
    retries: int = 0,
    retry_delay: float = 1.0,
    settings: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    on_failure: Hook | str | None = None,
    on_success: Hook | str | None = None,
    model: Model | str | None = None,
) -> Step | Callable[[Callable[..., Any]], Step]:
    """Turn a plain function into a pipeline step.

    Args:
        func: the function (when used as ``@step`` without parentheses).
        name: the step's name; defaults to the function's name.
        enable_cache: reuse earlier outputs when code, parameters and inputs are unchanged.
        retries: how many times to re-run the function after it raises.
        retry_delay: seconds before the first retry; doubled after each attempt.
        settings: free-form settings for orchestrators and stack components.
        extra: free-form data recorded with the step.
        on_failure: a function (or its import string, ``"package.module.function"``)
            called once when the step has failed for good: it is given the exception in
            the parameter annotated ``BaseException`` (or a subclass), else in its first
            one, and ``context=`` if it takes it. ``get_step_context()`` works inside.
        on_success: a function (or its import string) called after the step's outputs
            are recorded, given ``context=`` if it takes it. A hook that raises does not
            change the step's status; its error is recorded as the step run's
            ``hook_error``.
        model: link this step's outputs to a model version (``Model("churn")`` or
            ``"churn:production"``); overrides the pipeline's ``model``.

    Example:
        >>> @step(retries=2)
        ... def double(x: int) -> int:
        ...     return 2 * x
        >>> double(3)
        6
    """

    def decorate(function: Callable[..., Any]) -> Step:
        if not callable(function) or isinstance(function, Step):
            raise StepDefinitionError(
                f"@step needs a plain function, got {function!r}.",
                step_name=getattr(function, "__name__", repr(function)),
            )
        step_name = name or function.__name__
        _check_retries(step_name, retries)
        options = StepOptions(
            name=step_name,
            enable_cache=enable_cache,
            retries=retries,
            retry_delay=retry_delay,
            settings=dict(settings or {}),
            extra=dict(extra or {}),
            on_failure=resolve_hook(on_failure, FAILURE, step_name),
            on_success=resolve_hook(on_success, SUCCESS, step_name),
            model=None if model is None else Model.parse(model, f"Step '{step_name}' model="),
        )
        return Step(function, options)

    if func is not None:
        return decorate(func)
    return decorate
