"""The compiled, serialisable DAG of a pipeline: ``PipelineSpec`` of ``StepSpec``.

A spec is plain data (JSON round-trips it), so it can be stored with a run, shipped to
another process or cluster, diffed and re-run. It names each step's function by
``module:qualname``; the orchestrator is handed the live ``Step`` objects beside it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from mlzen.errors import CycleError, PipelineDefinitionError


@dataclass(frozen=True)
class InputRef:
    """Where a step input comes from: output ``output`` of invocation ``step``."""

    step: str
    output: str


@dataclass(frozen=True)
class OutputSpec:
    """One output of a step: its name and the dotted path of its declared type."""

    name: str
    type: str


@dataclass
class StepSpec:
    """One invocation of a step inside a pipeline."""

    id: str
    name: str
    source: str
    inputs: dict[str, InputRef] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    after: list[str] = field(default_factory=list)
    outputs: list[OutputSpec] = field(default_factory=list)
    enable_cache: bool = True
    retries: int = 0
    retry_delay: float = 1.0
    settings: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    # The model its outputs are linked to (``Model.to_dict()``): the step's own, else
    # the pipeline's. Not part of the cache key: linking changes no output.
    model: dict[str, Any] | None = None

    @property
    def upstream(self) -> set[str]:
        """Ids of the invocations that must finish before this one starts."""
        return {ref.step for ref in self.inputs.values()} | set(self.after)

    @property
    def output_names(self) -> list[str]:
        return [output.name for output in self.outputs]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepSpec:
        data = dict(data)
        data["inputs"] = {k: InputRef(**v) for k, v in data.get("inputs", {}).items()}
        data["outputs"] = [OutputSpec(**o) for o in data.get("outputs", [])]
        return cls(**data)


@dataclass
class PipelineSpec:
    """A whole pipeline: its steps in the order they were called, and its parameters."""

    name: str
    steps: dict[str, StepSpec]
    parameters: dict[str, Any] = field(default_factory=dict)
    enable_cache: bool = True
    settings: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "parameters": self.parameters,
            "enable_cache": self.enable_cache,
            "settings": self.settings,
            "model": self.model,
            "steps": [step.to_dict() for step in self.steps.values()],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PipelineSpec:
        steps = [StepSpec.from_dict(s) for s in data["steps"]]
        return cls(
            name=data["name"],
            steps={s.id: s for s in steps},
            parameters=data.get("parameters", {}),
            enable_cache=data.get("enable_cache", True),
            settings=data.get("settings", {}),
            model=data.get("model"),
        )

    def downstream(self) -> dict[str, set[str]]:
        """Map each invocation id to the ids that wait for it.

        Raises:
            PipelineDefinitionError: a step depends on an invocation that does not exist.
        """
        self.check_references()
        children: dict[str, set[str]] = {step_id: set() for step_id in self.steps}
        for step in self.steps.values():
            for parent in step.upstream:
                children[parent].add(step.id)
        return children

    def topological_order(self) -> list[str]:
        """Invocation ids so that every step comes after everything it depends on.

        Raises:
            PipelineDefinitionError: a step depends on an invocation that does not exist.
            CycleError: the dependencies form a cycle; the message lists it.
        """
        self.check_references()
        remaining = {step_id: set(step.upstream) for step_id, step in self.steps.items()}
        children = self.downstream()
        ready = [step_id for step_id, parents in remaining.items() if not parents]
        order: list[str] = []
        while ready:
            step_id = ready.pop(0)
            order.append(step_id)
            for child in sorted(children[step_id]):
                remaining[child].discard(step_id)
                if not remaining[child]:
                    ready.append(child)
        if len(order) != len(self.steps):
            cycle = _find_cycle({k: v for k, v in remaining.items() if v})
            raise CycleError(
                f"Pipeline '{self.name}' has a dependency cycle: {' -> '.join(cycle)} "
                "(each step must finish before the next). Remove one of these edges "
                "(an input or an .after()).",
                pipeline_name=self.name,
                cycle=cycle,
                step_name=cycle[0],
            )
        return order

    def check_references(self) -> None:
        for step in self.steps.values():
            for argument, ref in step.inputs.items():
                if ref.step not in self.steps:
                    raise PipelineDefinitionError(
                        f"Step '{step.id}' argument '{argument}' reads from unknown step "
                        f"'{ref.step}'. Pass the output of a step called in this pipeline.",
                        step_name=step.id,
                        argument=argument,
                    )
                outputs = self.steps[ref.step].output_names
                if ref.output not in outputs:
                    raise PipelineDefinitionError(
                        f"Step '{step.id}' argument '{argument}' reads output '{ref.output}' "
                        f"of step '{ref.step}', which only has {outputs or 'no outputs'}.",
                        step_name=step.id,
                        argument=argument,
                    )
            for parent in step.after:
                if parent not in self.steps:
                    raise PipelineDefinitionError(
                        f"Step '{step.id}' runs .after() unknown step '{parent}'. "
                        f"Known steps: {', '.join(self.steps)}.",
                        step_name=step.id,
                        argument="after",
                    )

    def __iter__(self) -> Iterator[StepSpec]:
        return iter(self.steps.values())


def _find_cycle(edges: dict[str, set[str]]) -> list[str]:
    """Return one cycle (first node repeated at the end) in a graph known to have one.

    ``edges`` maps each node to its parents; the cycle is returned in running order,
    parent before child.
    """
    start = sorted(edges)[0]
    path = [start]
    seen = {start: 0}
    node = start
    while True:
        node = sorted(edges[node])[0]
        if node in seen:
            cycle = [*path[seen[node] :], node]
            return cycle[::-1]
        seen[node] = len(path)
        path.append(node)
