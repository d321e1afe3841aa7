"""``@pipeline``: tracing step calls into a ``PipelineSpec`` and running it.

Inside a pipeline function, calling a step does not run it: it records an invocation
and returns placeholders (``StepOutput``) that stand for its outputs.  Passing a
placeholder to another step is a data-flow edge; everything else passed to a step is a
parameter.  The finished trace is validated before anything runs.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from mlzen.errors import (
    ConfigError,
    MissingInputError,
    ParameterError,
    PipelineDefinitionError,
    PlaceholderMisuseError,
    UnknownInputError,
)
from mlzen.model import Model
from mlzen.names import check_name, name_problem
from mlzen.parameters import check_config_value, check_json_parameter, signature_hints
from mlzen.spec import InputRef, OutputSpec, PipelineSpec, StepSpec
from mlzen.steps import Step, active_tracer, after_list
from mlzen.yaml_files import read_yaml

if TYPE_CHECKING:
    from mlzen.client import PipelineRun


class StepInvocation:
    """Stands for one step call in a pipeline being traced; usable in ``.after()``."""

    _invocation_id: str
    _step_name: str

    def __init__(self, invocation_id: str, step_name: str) -> None:
        object.__setattr__(self, "_invocation_id", invocation_id)
        object.__setattr__(self, "_step_name", step_name)

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    def __repr__(self) -> str:
        return f"<output of step '{self._invocation_id}'>"


class StepOutput(StepInvocation):
    """Placeholder for a step's output while the pipeline function is traced.

    It only exists when the pipeline runs, so it cannot be inspected, compared, iterated
    or used in ``if``: pass it to another step instead.
    """

    _output_name: str

    def __init__(self, invocation_id: str, step_name: str, output_name: str) -> None:
        super().__init__(invocation_id, step_name)
        object.__setattr__(self, "_output_name", output_name)

    @property
    def output_name(self) -> str:
        return self._output_name

    def __repr__(self) -> str:
        return f"<output '{self._output_name}' of step '{self._invocation_id}'>"

    def _misuse(self, what: str) -> PlaceholderMisuseError:
        return PlaceholderMisuseError(
            f"Output '{self._output_name}' of step '{self._invocation_id}' was used as a "
            f"value in the pipeline body ({what}). While a pipeline is being built, step "
            "outputs are placeholders: their values only exist when the pipeline runs. "
            "Pass them to another step and put the logic (conditions, arithmetic, "
            "attribute access) inside that step.",
            step_name=self._invocation_id,
            argument=self._output_name,
        )

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        raise self._misuse(f"attribute '.{name}'")

    def __setattr__(self, name: str, value: Any) -> None:
        raise self._misuse(f"setting attribute '.{name}'")

    def __bool__(self) -> bool:
        raise self._misuse("truth test, e.g. 'if ...:'")

    def __iter__(self) -> Any:
        raise self._misuse("iteration or unpacking; this step has a single output")

    def __len__(self) -> int:
        raise self._misuse("len()")

    def __getitem__(self, key: Any) -> Any:
        raise self._misuse(f"indexing [{key!r}]")

    def __eq__(self, other: object) -> bool:
        raise self._misuse("comparison ==")

    def __ne__(self, other: object) -> bool:
        raise self._misuse("comparison !=")

    def __lt__(self, other: object) -> bool:
        raise self._misuse("comparison <")

    def __gt__(self, other: object) -> bool:
        raise self._misuse("comparison >")

    def __le__(self, other: object) -> bool:
        raise self._misuse("comparison <=")

    def __ge__(self, other: object) -> bool:
        raise self._misuse("comparison >=")

    def __add__(self, other: object) -> Any:
        raise self._misuse("arithmetic +")

    __radd__ = __add__

    def __sub__(self, other: object) -> Any:
        raise self._misuse("arithmetic -")

    __rsub__ = __sub__

    def __mul__(self, other: object) -> Any:
        raise self._misuse("arithmetic *")

    __rmul__ = __mul__

    def __truediv__(self, other: object) -> Any:
        raise self._misuse("arithmetic /")

    __rtruediv__ = __truediv__

    def __floordiv__(self, other: object) -> Any:
        raise self._misuse("arithmetic //")

    __rfloordiv__ = __floordiv__

    def __mod__(self, other: object) -> Any:
        raise self._misuse("arithmetic %")

    __rmod__ = __mod__

    def __pow__(self, other: object) -> Any:
        raise self._misuse("arithmetic **")

    __rpow__ = __pow__

    def __matmul__(self, other: object) -> Any:
        raise self._misuse("arithmetic @")

    __rmatmul__ = __matmul__

    def __and__(self, other: object) -> Any:
        raise self._misuse("operator &")

    __rand__ = __and__

    def __or__(self, other: object) -> Any:
        raise self._misuse("operator |")

    __ror__ = __or__

    def __xor__(self, other: object) -> Any:
        raise self._misuse("operator ^")

    __rxor__ = __xor__

    def __neg__(self) -> Any:
        raise self._misuse("unary -")

    def __pos__(self) -> Any:
        raise self._misuse("unary +")

    def __abs__(self) -> Any:
        raise self._misuse("abs()")

    def __invert__(self) -> Any:
        raise self._misuse("operator ~")

    def __round__(self, ndigits: int | None = None) -> Any:
        raise self._misuse("round()")

    def __index__(self) -> int:
        raise self._misuse("use as an index or size")

    def __contains__(self, item: object) -> bool:
        raise self._misuse("membership test 'in'")

    def __setitem__(self, key: Any, value: Any) -> None:
        raise self._misuse(f"item assignment [{key!r}] = ...")

    def __delitem__(self, key: Any) -> None:
        raise self._misuse(f"item deletion del [{key!r}]")

    def __delattr__(self, name: str) -> None:
        raise self._misuse(f"deleting attribute '.{name}'")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise self._misuse("calling it like a function")

    def __float__(self) -> float:
        raise self._misuse("float()")

    def __int__(self) -> int:
        raise self._misuse("int()")

    def __str__(self) -> str:
        raise self._misuse("str() or an f-string")

    __hash__ = StepInvocation.__hash__


@dataclass
class StepOverrides:
    """Per-step values from a run configuration (``steps: {<id>: {...}}``)."""

    parameters: dict[str, Any] = field(default_factory=dict)
    enable_cache: bool | None = None
    retries: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    model: Model | None = None


@dataclass
class RunConfig:
    """A run configuration, as written in a YAML file or given to ``with_options``."""

    parameters: dict[str, Any] = field(default_factory=dict)
    enable_cache: bool | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    run_name: str | None = None
    steps: dict[str, StepOverrides] = field(default_factory=dict)
    model: Model | None = None

    @classmethod
    def from_yaml(cls, path: str | Path) -> RunConfig:
        """Read and check a YAML run configuration file."""
        file = Path(path)
        if not file.is_file():
            raise ConfigError(
                f"Run configuration '{file}' does not exist. Check the path passed as config_path.",
                path=str(file),
            )
        data = read_yaml(file, what=f"Run configuration '{file}'", fix="Fix the file.") or {}
        return cls.from_dict(data, source=str(file))

    @classmethod
    def from_dict(cls, data: Any, source: str = "run configuration") -> RunConfig:
        """Check a run configuration mapping; unknown keys are errors naming the key."""
        _expect_mapping(data, source)
        _reject_unknown(data, set(cls.__dataclass_fields__), source)
        _check_value_types(data, source)
        steps: dict[str, StepOverrides] = {}
        for step_id, overrides in (data.get("steps") or {}).items():
            where = f"{source}: steps.{step_id}"
            _expect_mapping(overrides, where)
            _reject_unknown(overrides, set(StepOverrides.__dataclass_fields__), where)
            _check_value_types(overrides, where)
            values = {k: v for k, v in overrides.items() if v is not None}
            if "model" in values:
                values["model"] = Model.parse(values["model"], f"{where}: model")
            steps[str(step_id)] = StepOverrides(**values)
        values = {k: v for k, v in data.items() if k != "steps" and v is not None}
        if "model" in values:
            values["model"] = Model.parse(values["model"], f"{source}: model")
        return cls(steps=steps, **values)

    def merged(self, other: RunConfig) -> RunConfig:
        """This configuration with ``other``'s values laid on top."""
        steps = dict(self.steps)
        for step_id, overrides in other.steps.items():
            base = steps.get(step_id, StepOverrides())
            steps[step_id] = StepOverrides(
                parameters={**base.parameters, **overrides.parameters},
                enable_cache=_first(overrides.enable_cache, base.enable_cache),
                retries=_first(overrides.retries, base.retries),
                settings={**base.settings, **overrides.settings},
                extra={**base.extra, **overrides.extra},
                model=_first(overrides.model, base.model),
            )
        return RunConfig(
            parameters={**self.parameters, **other.parameters},
            enable_cache=_first(other.enable_cache, self.enable_cache),
            settings={**self.settings, **other.settings},
            extra={**self.extra, **other.extra},
            run_name=other.run_name or self.run_name,
            steps=steps,
            model=_first(other.model, self.model),
        )


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _expect_mapping(data: Any, where: str) -> None:
    if not isinstance(data, dict):
        raise ConfigError(
            f"{where} must be a mapping (key: value), not {type(data).__name__}.",
            path=where,
        )


# The type each run configuration key must have (``None`` always means "not set").
_VALUE_TYPES: dict[str, tuple[type, ...]] = {
    "parameters": (dict,),
    "settings": (dict,),
    "extra": (dict,),
    "steps": (dict,),
    "enable_cache": (bool,),
    "retries": (int,),
    "run_name": (str,),
}


def _check_value_types(data: dict[str, Any], where: str) -> None:
    for key, value in data.items():
        kinds = _VALUE_TYPES.get(key)
        if value is None or kinds is None:
            continue
        wrong = not isinstance(value, kinds) or (
            # bool is an int; 'retries: true' is a mistake, not one retry.
            key == "retries" and (isinstance(value, bool) or (isinstance(value, int) and value < 0))
        )
        if wrong:
            expected = {
                dict: "a mapping (key: value)",
                bool: "true or false",
                int: "a whole number, 0 or more",
                str: "a string",
            }[kinds[0]]
            raise ConfigError(
                f"Key '{key}' in {where} must be {expected}, not {value!r}.",
                key=key,
                path=where,
            )


def _reject_unknown(data: dict[str, Any], known: set[str], where: str) -> None:
    for key in data:
        if key not in known:
            raise ConfigError(
                f"Unknown key '{key}' in {where}. Allowed keys: {', '.join(sorted(known))}.",
                key=key,
                path=where,
            )


class PipelineBuilder:
    """The tracer: records step invocations made by a pipeline function."""

    def __init__(self, pipeline_name: str) -> None:
        self.pipeline_name = pipeline_name
        self.specs: dict[str, StepSpec] = {}
        self.steps: dict[str, Step] = {}
        self._latest: dict[int, str] = {}

    def add_invocation(self, step: Step, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        invocation_id = self._invocation_id(step, kwargs.pop("id", None))
        after: list[str] = []
        for other in after_list(kwargs.pop("after", None)):
            resolved = self._resolve_after(step, other)
            if resolved not in after:
                after.append(resolved)
        inputs, parameters = self._bind(step, invocation_id, args, kwargs)
        self.specs[invocation_id] = StepSpec(
            id=invocation_id,
            name=step.name,
            source=step.source,
            inputs=inputs,
            parameters=parameters,
            after=after,
            outputs=[OutputSpec(o.name, o.type) for o in step.signature.outputs],
            enable_cache=step.options.enable_cache,
            retries=step.options.retries,
            retry_delay=step.options.retry_delay,
            settings=dict(step.options.settings),
            extra=dict(step.options.extra),
            model=step.options.model.to_dict() if step.options.model is not None else None,
        )
        self.steps[invocation_id] = step
        self._latest[id(step)] = invocation_id
        outputs = [StepOutput(invocation_id, step.name, name) for name in step.output_names]
        if not outputs:
            return StepInvocation(invocation_id, step.name)
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def _invocation_id(self, step: Step, requested: Any) -> str:
        if requested is not None:
            invocation_id = str(requested)
            problem = name_problem(invocation_id)
            if problem is not None:
                raise PipelineDefinitionError(
                    f"Step '{step.name}' in pipeline '{self.pipeline_name}' has the id "
                    f"{invocation_id!r}, which cannot be recorded: {problem}. Use 1 to 255 "
                    "characters without '/', '\\', '..' or control characters.",
                    step_name=step.name,
                    argument="id",
                )
            if invocation_id in self.specs:
                raise PipelineDefinitionError(
                    f"Two step calls in pipeline '{self.pipeline_name}' use id "
                    f"'{invocation_id}'. Give each call its own id=.",
                    step_name=invocation_id,
                    argument="id",
                )
            return invocation_id
        invocation_id, counter = step.name, 1
        while invocation_id in self.specs:
            counter += 1
            invocation_id = f"{step.name}_{counter}"
        return invocation_id

    def _resolve_after(self, step: Step, other: Any) -> str:
        if isinstance(other, StepInvocation):
            return other.invocation_id
        if isinstance(other, tuple) and other and isinstance(other[0], StepInvocation):
            return other[0].invocation_id
        if isinstance(other, Step):
            if id(other) not in self._latest:
                raise PipelineDefinitionError(
                    f"Step '{step.name}' runs .after('{other.name}'), but '{other.name}' has "
                    "not been called yet in this pipeline. Call it first.",
                    step_name=step.name,
                    argument="after",
                )
            return self._latest[id(other)]
        if isinstance(other, str):
            return other
        raise PipelineDefinitionError(
            f"Step '{step.name}' got {other!r} in after=; pass steps, step outputs or "
            "invocation ids.",
            step_name=step.name,
            argument="after",
        )

    def _bind(
        self, step: Step, invocation_id: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[dict[str, InputRef], dict[str, Any]]:
        names = list(step.signature.arguments)
        positional = [
            name
            for name, param in step.signature.arguments.items()
            if param.kind is not inspect.Parameter.KEYWORD_ONLY
        ]
        if len(args) > len(positional):
            raise UnknownInputError(
                f"Step '{invocation_id}' takes {len(positional)} positional arguments but got "
                f"{len(args)}. Remove the extra arguments or pass them by name.",
                step_name=invocation_id,
                argument=None,
            )
        given = dict(zip(positional, args, strict=False))
        for name, value in kwargs.items():
            if name not in step.signature.arguments and not step.signature.accepts_kwargs:
                raise UnknownInputError(
                    f"Step '{invocation_id}' has no argument '{name}'. Its arguments are: "
                    f"{', '.join(names) or 'none'}.",
                    step_name=invocation_id,
                    argument=name,
                )
            if name in given:
                raise UnknownInputError(
                    f"Step '{invocation_id}' got argument '{name}' twice (by position and "
                    "by name). Pass it once.",
                    step_name=invocation_id,
                    argument=name,
                )
            given[name] = value
        inputs: dict[str, InputRef] = {}
        parameters: dict[str, Any] = {}
        for name, value in given.items():
            if isinstance(value, StepOutput):
                inputs[name] = InputRef(value.invocation_id, value.output_name)
            elif _holds_invocation(value):
                raise PipelineDefinitionError(
                    f"Step '{invocation_id}' argument '{name}' got {value!r}, which is not a "
                    "single step output. Unpack a multi-output step's result "
                    "(a, b = split(...)) and pass one output per argument (outputs cannot "
                    "be nested in lists or dicts); use .after() to wait for a step without "
                    "outputs.",
                    step_name=invocation_id,
                    argument=name,
                )
            else:
                check_json_parameter(invocation_id, name, value)
                parameters[name] = value
        for name, param in step.signature.arguments.items():
            if name in given:
                continue
            if param.default is inspect.Parameter.empty:
                raise MissingInputError(
                    f"Step '{invocation_id}' is missing argument '{name}'. Pass another "
                    f"step's output or a value, e.g. {step.name}({name}=...).",
                    step_name=invocation_id,
                    argument=name,
                )
            try:
                check_json_parameter(invocation_id, name, param.default)
            except PipelineDefinitionError:
                continue  # a non-JSON default stays the function's business
            parameters[name] = param.default
        return inputs, parameters


def _holds_invocation(value: Any) -> bool:
    """True for a step call result (other than one output) or a container holding one.

    Iterative, and it looks at each container's element types at C speed, so neither a
    value nested thousands deep nor a list of millions of numbers is a problem here.
    """
    containers = list | tuple | set | frozenset | dict
    pending, seen = [value], set()
    while pending:
        item = pending.pop()
        if isinstance(item, StepInvocation):
            return True
        if not isinstance(item, containers) or id(item) in seen:
            continue
        seen.add(id(item))
        groups = (item.keys(), item.values()) if isinstance(item, dict) else (item,)
        for group in groups:
            kinds = set(map(type, group))
            if any(issubclass(kind, StepInvocation) for kind in kinds):
                return True
            if any(issubclass(kind, containers) for kind in kinds):
                pending.extend(v for v in group if isinstance(v, containers))
    return False


@dataclass
class PipelineOptions:
    """Options set with ``@pipeline(...)`` or ``Pipeline.with_options``."""

    name: str
    enable_cache: bool = True
    settings: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    config: RunConfig = field(default_factory=RunConfig)
    model: Model | None = None


class Pipeline:
    """A function whose step calls form a data-flow pipeline; call it to run it."""

    def __init__(self, func: Callable[..., Any], options: PipelineOptions) -> None:
        self.func = func
        self.options = options
        self._signature = inspect.signature(func)
        functools.update_wrapper(self, func)

    @property
    def name(self) -> str:
        return self.options.name

    def with_options(
        self,
        *,
        config_path: str | Path | None = None,
        enable_cache: bool | None = None,
        settings: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
        run_name: str | None = None,
        parameters: dict[str, Any] | None = None,
        steps: dict[str, dict[str, Any]] | None = None,
        model: Model | str | None = None,
    ) -> Pipeline:
        """Return a copy of this pipeline with configuration laid over its defaults.

        A YAML file at ``config_path`` is applied first, the keyword arguments on top.
        ``model`` links the run's outputs to a model version (see :class:`mlzen.Model`).

        Example:
            >>> training.with_options(config_path="run.yaml", enable_cache=False)()
        """
        config = self.options.config
        if config_path is not None:
            config = config.merged(RunConfig.from_yaml(config_path))
        inline = RunConfig.from_dict(
            {
                "enable_cache": enable_cache,
                "settings": settings or {},
                "extra": extra or {},
                "run_name": run_name,
                "parameters": parameters or {},
                "steps": steps or {},
                "model": model,
            },
            source="with_options()",
        )
        return Pipeline(self.func, replace(self.options, config=config.merged(inline)))

    def build(self, *args: Any, **kwargs: Any) -> tuple[PipelineSpec, dict[str, Step]]:
        """Trace the pipeline function into a validated spec, running nothing."""
        if active_tracer.get() is not None:
            raise PipelineDefinitionError(
                f"Pipeline '{self.name}' was called inside another pipeline's body. Call "
                "its steps directly instead of nesting pipelines.",
                pipeline_name=self.name,
            )
        config = self.options.config
        parameters = self._bind_parameters(args, kwargs, config)
        builder = PipelineBuilder(self.name)
        token = active_tracer.set(builder)
        try:
            self.func(**parameters)
        finally:
            active_tracer.reset(token)
        if not builder.specs:
            raise PipelineDefinitionError(
                f"Pipeline '{self.name}' calls no steps. Call at least one @step function "
                "in its body.",
                pipeline_name=self.name,
            )
        self._apply_step_config(builder, config)
        spec = PipelineSpec(
            name=self.name,
            steps=builder.specs,
            parameters=parameters,
            enable_cache=_first(config.enable_cache, self.options.enable_cache),
            settings={**self.options.settings, **config.settings},
            model=model.to_dict() if (model := self._model(config)) is not None else None,
        )
        spec.topological_order()
        return spec, builder.steps

    def _bind_parameters(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], config: RunConfig
    ) -> dict[str, Any]:
        for key in config.parameters:
            if key not in self._signature.parameters:
                raise ConfigError(
                    f"Unknown parameter '{key}' for pipeline '{self.name}' in the run "
                    f"configuration. Its parameters: "
                    f"{', '.join(self._signature.parameters) or 'none'}.",
                    key=key,
                    pipeline_name=self.name,
                )
        try:
            bound = self._signature.bind_partial(*args, **kwargs)
        except TypeError as exc:
            raise PipelineDefinitionError(
                f"Pipeline '{self.name}' called with wrong arguments: {exc}. Its signature "
                f"is {self.name}{self._signature}.",
                pipeline_name=self.name,
            ) from None
        hints = signature_hints(self.func)
        from_config = {}
        for name, value in config.parameters.items():
            # Checked like `mlzen run -p` checks its values, before anything runs.
            check_json_parameter(self.name, name, value, kind="Pipeline")
            from_config[name] = check_config_value(
                f"Pipeline '{self.name}'", name, hints.get(name, Any), value
            )
        parameters = {**from_config, **bound.arguments}
        for name, param in self._signature.parameters.items():
            if name not in parameters:
                if param.default is inspect.Parameter.empty:
                    raise MissingInputError(
                        f"Pipeline '{self.name}' needs parameter '{name}'. Pass it when "
                        "calling the pipeline or under 'parameters:' in the run config.",
                        pipeline_name=self.name,
                        argument=name,
                    )
                parameters[name] = param.default
        parameters = {name: parameters[name] for name in self._signature.parameters}
        for name, value in parameters.items():
            try:
                check_json_parameter(self.name, name, value, kind="Pipeline")
            except ParameterError as exc:
                raise ParameterError(
                    exc.message, **{**exc.fields, "pipeline_name": self.name}
                ) from None
        return parameters

    def _model(self, config: RunConfig) -> Model | None:
        """The run's model: the run configuration's, else the one given to @pipeline."""
        return _first(config.model, self.options.model)  # type: ignore[no-any-return]

    def _apply_step_config(self, builder: PipelineBuilder, config: RunConfig) -> None:
        pipeline_cache = _first(config.enable_cache, self.options.enable_cache)
        pipeline_model = self._model(config)
        for step_spec in builder.specs.values():
            step_spec.enable_cache = bool(pipeline_cache and step_spec.enable_cache)
            step_spec.settings = {**self.options.settings, **config.settings, **step_spec.settings}
            if step_spec.model is None and pipeline_model is not None:
                step_spec.model = pipeline_model.to_dict()
        for step_id, overrides in config.steps.items():
            if step_id not in builder.specs:
                raise ConfigError(
                    f"The run configuration names step '{step_id}', which pipeline "
                    f"'{self.name}' does not call. Its steps: {', '.join(builder.specs)}.",
                    key=step_id,
                    step_name=step_id,
                )
            step_spec = builder.specs[step_id]
            step = builder.steps[step_id]
            for name, value in overrides.parameters.items():
                if name not in step.signature.arguments:
                    raise ConfigError(
                        f"Unknown parameter '{name}' for step '{step_id}' in the run "
                        f"configuration. Its arguments: "
                        f"{', '.join(step.signature.arguments) or 'none'}.",
                        key=name,
                        step_name=step_id,
                        argument=name,
                    )
                if name in step_spec.inputs:
                    raise ConfigError(
                        f"Step '{step_id}' argument '{name}' receives the output of step "
                        f"'{step_spec.inputs[name].step}', so the run configuration cannot "
                        "set it as a parameter. Remove it from the configuration.",
                        key=name,
                        step_name=step_id,
                        argument=name,
                    )
                check_json_parameter(step_id, name, value)
                step_spec.parameters[name] = check_config_value(
                    f"Step '{step_id}'", name, step.signature.annotations.get(name, Any), value
                )
            if overrides.enable_cache is not None:
                step_spec.enable_cache = overrides.enable_cache
            if overrides.retries is not None:
                step_spec.retries = overrides.retries
            step_spec.settings.update(overrides.settings)
            step_spec.extra.update(overrides.extra)
            if overrides.model is not None:
                step_spec.model = overrides.model.to_dict()

    def __call__(self, *args: Any, resume_from: Any = None, **kwargs: Any) -> PipelineRun:
        """Build the pipeline and run it on the active stack.

        Returns:
            The finished run.

        Raises:
            RunFailedError: a step failed; the error carries the run (``.run``).
        """
        spec, steps = self.build(*args, **kwargs)
        # The one sanctioned upward call: running a pipeline is the user's entry point.
        from mlzen.client import Client

        return Client().run_pipeline(
            spec, steps, run_name=self.options.config.run_name, resume_from=resume_from
        )


@overload
def pipeline(func: Callable[..., Any], /) -> Pipeline: ...


@overload
def pipeline(
    *,
    name: str | None = None,
    enable_cache: bool = True,
    settings: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    model: Model | str | None = None,
) -> Callable[[Callable[..., Any]], Pipeline]: ...


def pipeline(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    enable_cache: bool = True,
    settings: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    model: Model | str | None = None,
) -> Pipeline | Callable[[Callable[..., Any]], Pipeline]:
    """Turn a function that calls steps into a pipeline.

    Args:
        func: the function (when used as ``@pipeline`` without parentheses).
        name: the pipeline's name; defaults to the function's name.
        enable_cache: ``False`` turns caching off for every step.
        settings: settings passed to every step (steps may override them).
        extra: free-form data recorded with each run.
        model: link every output of each run to a model version (``Model("churn")``
            makes a new version per run); a step's own ``model=`` overrides it.

    Example:
        >>> @pipeline
        ... def training(C: float = 1.0):
        ...     train(load(), C=C)
    """

    def decorate(function: Callable[..., Any]) -> Pipeline:
        pipeline_name = name or function.__name__
        check_name("pipeline", pipeline_name)
        options = PipelineOptions(
            name=pipeline_name,
            enable_cache=enable_cache,
            settings=dict(settings or {}),
            extra=dict(extra or {}),
            model=None
            if model is None
            else Model.parse(model, f"Pipeline '{pipeline_name}' model="),
        )
        return Pipeline(function, options)

    if func is not None:
        return decorate(func)
    return decorate
