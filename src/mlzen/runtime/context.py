"""What a running step can ask about itself: ``get_step_context()`` and ``log_metadata``."""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from mlzen.errors import MlzenError, NotFoundError
from mlzen.model import ModelVersionInfo


@dataclass
class StepContext:
    """The running step: its run, its names and the metadata it has logged so far.

    ``model_version`` is the model version its outputs are linked to (``None`` when
    neither the step nor its pipeline has ``model=``). ``experiment_tracker`` is what
    the stack's experiment tracker opened for this step (for MLflow, an ``MlflowStepRun``
    with ``run_id`` and ``client``), else ``None``.
    """

    run_id: str
    run_name: str
    pipeline_name: str
    step_run_id: str
    step_name: str
    invocation_id: str
    output_names: list[str]
    parameters: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    output_metadata: dict[str, dict[str, Any]] = field(default_factory=dict)
    model_version: ModelVersionInfo | None = None
    model_metadata: dict[str, Any] = field(default_factory=dict)
    experiment_tracker: Any = None

    def add_output_metadata(self, output_name: str, metadata: Mapping[str, Any]) -> None:
        """Attach metadata to one of this step's outputs (recorded when it is saved)."""
        if output_name not in self.output_names:
            raise NotFoundError(
                f"Step '{self.invocation_id}' has no output '{output_name}'. Its outputs: "
                f"{', '.join(self.output_names) or 'none'}.",
                step_name=self.invocation_id,
                argument=output_name,
            )
        self.output_metadata.setdefault(output_name, {}).update(_json_values(metadata))


_current: ContextVar[StepContext | None] = ContextVar("mlzen_step_context", default=None)


def current_step_context() -> StepContext | None:
    return _current.get()


def set_step_context(context: StepContext | None) -> Any:
    return _current.set(context)


def reset_step_context(token: Any) -> None:
    _current.reset(token)


def get_step_context() -> StepContext:
    """The context of the step running in this thread.

    Raises:
        MlzenError: called outside a running step.

    Example:
        >>> @step
        ... def train() -> int:
        ...     context = get_step_context()
        ...     context.add_output_metadata("output", {"rows": 10})
        ...     return 10
    """
    context = _current.get()
    if context is None:
        raise MlzenError(
            "get_step_context() was called outside a running step. Call it inside a @step "
            "function while its pipeline runs."
        )
    return context


#: The largest array (in elements) that metadata takes as a JSON list.
MAX_METADATA_ARRAY = 1000


def _json_values(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """``metadata`` as JSON values: NumPy scalars and small arrays (anywhere in a value)
    become numbers and lists; anything else that JSON cannot hold is an error naming
    the key and the type."""
    import json

    values: dict[str, Any] = {}
    for key, value in metadata.items():
        try:
            text = json.dumps(value, allow_nan=True, default=_plain)
        except (TypeError, ValueError, RecursionError) as exc:
            if isinstance(exc, _NotJson):
                what = exc.args[0]
            elif isinstance(exc, RecursionError):
                what = f"{type(value).__name__} nested too deeply"
            else:
                what = type(value).__name__
            raise MlzenError(
                f"Metadata '{key}' holds a value of type {what}, which mlzen cannot record "
                "as JSON. Log "
                "numbers, strings, lists or dicts of them (convert it, e.g. with float(x), "
                f"x.tolist() for an array of up to {MAX_METADATA_ARRAY} elements, or "
                "str(x)); save larger or richer values as a step output (an artifact).",
                argument=str(key),
                data_type=what,
            ) from None
        values[str(key)] = json.loads(text)
    return values


class _NotJson(TypeError):
    """A value JSON cannot hold; its argument names the type."""


def _plain(value: Any) -> Any:
    """``json.dumps``' fallback: NumPy scalars and small arrays as plain values."""
    shape = getattr(value, "shape", None)
    if hasattr(value, "item") and hasattr(value, "dtype") and shape is not None:
        if shape == ():
            return value.item()
        if hasattr(value, "tolist") and getattr(value, "size", 0) <= MAX_METADATA_ARRAY:
            return value.tolist()
        raise _NotJson(f"{type(value).__name__} of shape {tuple(shape)}")
    raise _NotJson(type(value).__name__)


def log_metadata(
    metadata: Mapping[str, Any],
    *,
    artifact_name: str | None = None,
    step_run_id: str | None = None,
    run_id: str | None = None,
    artifact_version_id: str | None = None,
    model: bool = False,
    model_version_id: str | None = None,
) -> None:
    """Attach key/value metadata to a step run, an output artifact, a run or a model
    version.

    Inside a step, with no target, it goes to the running step; with ``artifact_name``
    to that output of the running step; with ``model=True`` to the model version the
    step's outputs are linked to (recorded with them when the step succeeds). Outside a
    step, name the target by id.

    Example:
        >>> log_metadata({"accuracy": 0.93})                    # inside a step
        >>> log_metadata({"rows": 10}, artifact_name="train")  # an output of the step
        >>> log_metadata({"auc": 0.91}, model=True)            # the step's model version
    """
    values = _json_values(metadata)
    context = _current.get()
    targets = [x for x in (step_run_id, run_id, artifact_version_id, model_version_id) if x]
    if context is not None and not targets:
        if model:
            if artifact_name is not None:
                raise MlzenError("log_metadata() got both artifact_name= and model=True; pass one.")
            if context.model_version is None:
                raise MlzenError(
                    f"log_metadata(..., model=True) in step '{context.invocation_id}', whose "
                    "outputs are linked to no model. Pass model=Model('name') to @step or "
                    "@pipeline.",
                    step_name=context.invocation_id,
                )
            context.model_metadata.update(values)
        elif artifact_name is not None:
            context.add_output_metadata(artifact_name, values)
        else:
            context.metadata.update(values)
        return
    if len(targets) != 1 or artifact_name is not None or model:
        raise MlzenError(
            "log_metadata() outside a step needs exactly one target: step_run_id=, run_id=, "
            "artifact_version_id= or model_version_id=. Inside a step it needs none (or "
            "artifact_name=, or model=True)."
        )
    from mlzen.config import load_settings
    from mlzen.store import open_metadata_store, runs_store_url

    store = open_metadata_store(runs_store_url(load_settings()))
    if step_run_id:
        store.add_metadata("step_run", step_run_id, values)
    elif run_id:
        store.add_metadata("pipeline_run", run_id, values)
    elif model_version_id:
        store.add_metadata("model_version", model_version_id, values)
    else:
        store.add_metadata("artifact_version", str(artifact_version_id), values)
