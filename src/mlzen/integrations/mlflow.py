"""MLflow as an experiment tracker (``mlzen[mlflow]``, flavor ``experiment_tracker.mlflow``).

With this tracker in the stack, every pipeline run becomes an MLflow run and each of its
step runs a child run of it (tag ``mlflow.parentRunId``), in the experiment named after
the pipeline:

- step parameters become the child's MLflow params, pipeline parameters the parent's;
- numeric ``log_metadata`` values become metrics (nested dicts as ``a.b``); other values
  stay in mlzen only;
- tags link back to mlzen: ``mlzen.pipeline_name``, ``mlzen.run_name``, ``mlzen.run_id``,
  ``mlzen.step_name``, ``mlzen.invocation_id``, ``mlzen.step_run_id``,
  ``mlzen.cache_hit`` (and ``mlzen.cached_from`` on a cache hit);
- a failed step ends its run ``FAILED`` and then the pipeline's run ends ``FAILED``.

A cached step is still recorded, as a ``FINISHED`` child with ``mlzen.cache_hit=true``,
its params and no metrics (its metrics live on the run it was cached from), so a
pipeline run in MLflow always shows all its steps.

The MLflow client API is used with explicit run ids, so steps running side by side in
threads or processes never share MLflow's per-thread "active run". Only ``autolog=True``
uses MLflow's fluent API: the step's run is made the active run of the thread that runs
the step, and ``mlflow.autolog()`` is switched on in that process (MLflow's tracking URI
is process-wide, so it is set to the tracker's). MLflow autologs one fit per process at
a time, so autologged steps sharing a process (threads) take turns; with
``MLZEN_EXECUTOR=processes`` they run in parallel. Inside a step,
``get_step_context().experiment_tracker`` is an :class:`MlflowStepRun` (run id, client).

Register and use it::

    mlzen component register experiment_tracker mlflow --flavor mlflow --autolog true
    mlzen stack register tracked -o local -a local -e mlflow --set
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlzen.errors import ConfigError
from mlzen.flavors import ExperimentTrackerComponent, Flavor, deferred_config

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient
    from pydantic import BaseModel

#: Where the tracker writes when no ``tracking_uri`` is given, under the project root.
DEFAULT_FOLDER = ".mlzen/mlflow"
STATUSES = {"completed": "FINISHED", "cached": "FINISHED", "failed": "FAILED", "stopped": "KILLED"}
# MLflow's limits (mlflow.utils.validation), so a long value is cut, not rejected.
_MAX_PARAM_LENGTH = 6000
_MAX_PARAMS_PER_BATCH = 100
_MAX_METRICS_PER_BATCH = 1000
_BAD_KEY_CHARACTERS = re.compile(r"[^/\w.\- ]")
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]+(?=@)")
# MLflow keeps one autologging session per process, not per thread: a fit in one thread
# while another thread's fit is logging is taken for a nested call and not logged. So
# autologged steps of one process run one at a time (processes run them in parallel).
_autolog_step = threading.Lock()


@functools.lru_cache(maxsize=8)
def _client(tracking_uri: str) -> MlflowClient:
    """One client per tracking URI and process (opening a SQL store migrates it)."""
    from mlflow.tracking import MlflowClient

    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=tracking_uri)


@dataclass
class MlflowStepRun:
    """The MLflow run of the running step: ``get_step_context().experiment_tracker``.

    Attributes:
        run_id: The step's MLflow run.
        parent_run_id: The pipeline run's MLflow run (None when not nested).
        experiment_id: The experiment both belong to.
        tracking_uri: Where they are recorded.
        fluent: Whether the run is also MLflow's active run in this thread (autolog on),
            so ``mlflow.log_metric(...)`` reaches it too.
    """

    run_id: str
    parent_run_id: str | None
    experiment_id: str
    tracking_uri: str
    fluent: bool = False

    @property
    def client(self) -> MlflowClient:
        """An ``MlflowClient`` for the tracking store (call it with :attr:`run_id`)."""
        return _client(self.tracking_uri)

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        """Log one metric value (e.g. a loss per epoch, with ``step``) to the step's run."""
        self.client.log_metric(self.run_id, _key(key), float(value), step=step)


class MlflowExperimentTracker(ExperimentTrackerComponent):
    """Mirrors runs and step runs into MLflow; holds only its config, so it pickles."""

    def __init__(
        self,
        tracking_uri: str,
        *,
        experiment_name: str | None = None,
        artifact_location: str | None = None,
        autolog: bool = False,
        log_models: bool = False,
        nested: bool = True,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.artifact_location = artifact_location
        self.autolog = autolog
        self.log_models = log_models
        self.nested = nested

    def __repr__(self) -> str:
        return f"MlflowExperimentTracker(tracking_uri={_redacted(self.tracking_uri)!r})"

    @property
    def client(self) -> MlflowClient:
        return _client(self.tracking_uri)

    # -- the pipeline run ---------------------------------------------------------------

    def start_run(
        self,
        *,
        pipeline_name: str,
        run_id: str,
        run_name: str,
        parameters: dict[str, Any],
        **kwargs: Any,
    ) -> dict[str, str | None]:
        """Find or create the experiment; open the pipeline's run when ``nested``."""
        with self._errors("start the run"):
            experiment_id = self._experiment_id(self.experiment_name or pipeline_name)
            parent_id = None
            if self.nested:
                tags = {
                    "mlzen.pipeline_name": pipeline_name,
                    "mlzen.run_name": run_name,
                    "mlzen.run_id": run_id,
                }
                parent = self.client.create_run(experiment_id, tags=tags, run_name=run_name)
                parent_id = parent.info.run_id
                self._log(parent_id, params=parameters)
        return {"experiment_id": experiment_id, "run_id": parent_id}

    def end_run(self, run: Mapping[str, str | None], *, status: str, **kwargs: Any) -> None:
        """End the pipeline's run with mlzen's final status."""
        if run["run_id"] is not None:
            with self._errors("end the run"):
                self.client.set_terminated(run["run_id"], _status(status))

    # -- step runs ------------------------------------------------------------------------

    def start_step(
        self,
        run: Mapping[str, str | None],
        *,
        pipeline_name: str,
        run_id: str,
        run_name: str,
        step_name: str,
        invocation_id: str,
        step_run_id: str,
        parameters: dict[str, Any],
        cached_from: str | None = None,
        **kwargs: Any,
    ) -> MlflowStepRun:
        """Open the step's run (a child of the pipeline's); with autolog, make it active."""
        experiment_id = str(run["experiment_id"])
        tags = {
            "mlzen.pipeline_name": pipeline_name,
            "mlzen.run_name": run_name,
            "mlzen.run_id": run_id,
            "mlzen.step_name": step_name,
            "mlzen.invocation_id": invocation_id,
            "mlzen.step_run_id": step_run_id,
            "mlzen.cache_hit": "true" if cached_from else "false",
        }
        if cached_from:
            tags["mlzen.cached_from"] = cached_from
        if run["run_id"] is not None:
            tags["mlflow.parentRunId"] = str(run["run_id"])
        with self._errors(f"start step '{invocation_id}'"):
            created = self.client.create_run(experiment_id, tags=tags, run_name=invocation_id)
        tracked = MlflowStepRun(
            created.info.run_id, run["run_id"], experiment_id, self.tracking_uri
        )
        try:
            with self._errors(f"start step '{invocation_id}'"):
                self._log(tracked.run_id, params=parameters)
                if self.autolog and not cached_from:
                    self._activate(tracked)
        except BaseException:
            self.client.set_terminated(tracked.run_id, "FAILED")
            raise
        return tracked

    def end_step(
        self, step: MlflowStepRun, *, status: str, metadata: dict[str, Any], **kwargs: Any
    ) -> None:
        """Log the step's numeric metadata as metrics and end its run with its status."""
        with self._errors(f"end the step's run {step.run_id}"):
            try:
                self._log(step.run_id, metrics=dict(_numbers(metadata)))
            finally:
                self._terminate(step, _status(status))

    def _terminate(self, step: MlflowStepRun, status: str) -> None:
        try:
            if step.fluent:
                import mlflow

                active = mlflow.active_run()
                if active is not None and active.info.run_id == step.run_id:
                    mlflow.end_run(status)
                    return
            self.client.set_terminated(step.run_id, status)
        finally:
            if step.fluent:
                step.fluent = False
                _autolog_off()

    # -- helpers --------------------------------------------------------------------------

    def _experiment_id(self, name: str) -> str:
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return str(found.experiment_id)
        try:
            return str(
                self.client.create_experiment(name, artifact_location=self._artifact_location())
            )
        except MlflowException:
            # Another run created it meanwhile.
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return str(found.experiment_id)

    def _artifact_location(self) -> str | None:
        """Beside a SQLite tracking file by default: MLflow's own default is the cwd."""
        if self.artifact_location:
            return self.artifact_location
        if self.tracking_uri.startswith("sqlite:///"):
            database = Path(self.tracking_uri.removeprefix("sqlite:///"))
            return (database.parent / "artifacts").as_uri()
        return None

    def _log(
        self,
        run_id: str,
        *,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
    ) -> None:
        from mlflow.entities import Metric, Param

        param_list = [Param(_key(k), _param_value(v)) for k, v in (params or {}).items()]
        for start in range(0, len(param_list), _MAX_PARAMS_PER_BATCH):
            self.client.log_batch(run_id, params=param_list[start : start + _MAX_PARAMS_PER_BATCH])
        now = int(time.time() * 1000)
        metric_list = [Metric(_key(k), v, now, 0) for k, v in (metrics or {}).items()]
        for start in range(0, len(metric_list), _MAX_METRICS_PER_BATCH):
            self.client.log_batch(
                run_id, metrics=metric_list[start : start + _MAX_METRICS_PER_BATCH]
            )

    def _activate(self, tracked: MlflowStepRun) -> None:
        """Make the step's run MLflow's active run in this thread and switch autolog on."""
        import mlflow

        _autolog_step.acquire()
        try:
            mlflow.set_tracking_uri(self.tracking_uri)
            mlflow.autolog(log_models=self.log_models)
            mlflow.start_run(run_id=tracked.run_id, nested=True)
        except BaseException:
            _autolog_off()
            raise
        tracked.fluent = True

    def _errors(self, action: str) -> _MlflowErrors:
        where = f"MLflow at {_redacted(self.tracking_uri)}"
        return _MlflowErrors(f"The experiment tracker ({where}) could not {action}")


def _autolog_off() -> None:
    """Switch autolog off again after a step: a fit outside any tracked step (in a
    notebook, on a stack without the tracker) must not log to MLflow's default experiment."""
    import mlflow

    try:
        mlflow.autolog(disable=True, silent=True)
    finally:
        _autolog_step.release()


class _MlflowErrors:
    """Turns an MLflow failure into a ``ConfigError`` naming the tracker and the fix."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _: Any) -> None:
        if exc is None or not isinstance(exc, Exception) or isinstance(exc, ConfigError):
            return
        raise ConfigError(
            f"{self.what}: {type(exc).__name__}: {_redacted(str(exc))}. Check the "
            "component's tracking_uri "
            "('mlzen component describe experiment_tracker <name>') and that the tracking "
            "server or file is reachable.",
            flavor="mlflow",
        ) from exc


def _redacted(uri: str) -> str:
    return _URL_PASSWORD.sub(r"\1***", uri)


def _status(status: str) -> str:
    return STATUSES.get(status, "FAILED")


def _key(key: str) -> str:
    """A name MLflow accepts: letters, digits and ``_ - . / space``; others become ``_``."""
    return _BAD_KEY_CHARACTERS.sub("_", str(key)) or "_"


def _param_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    if len(text) > _MAX_PARAM_LENGTH:
        text = text[: _MAX_PARAM_LENGTH - 3] + "..."
    return text


def _numbers(metadata: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
    """Numeric values (not booleans) of ``metadata``, nested dicts flattened as ``a.b``."""
    for key, value in metadata.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _numbers(value, name + ".")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            with contextlib.suppress(OverflowError):  # an int too large for a float
                yield name, float(value)


def _default_uri(project_root: str) -> str:
    return f"sqlite:///{Path(project_root) / DEFAULT_FOLDER / 'mlflow.db'}"


def _config_class() -> type[BaseModel]:
    from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

    class MlflowTrackerConfig(BaseModel):
        """``tracking_uri``: an MLflow tracking URI (``sqlite:///path.db``, ``http://...``,
        a folder) [default: ``sqlite:///<project>/.mlzen/mlflow/mlflow.db``];
        ``experiment_name`` [default: the pipeline's name]; ``artifact_location`` for a
        new experiment [default: ``artifacts`` beside a SQLite file]; ``autolog``: call
        ``mlflow.autolog()`` inside steps; ``log_models``: let autolog log models too
        (mlzen already versions them as artifacts); ``nested``: steps as children of one
        run per pipeline run (else top-level runs)."""

        model_config = ConfigDict(extra="forbid")

        tracking_uri: str | None = Field(None, validate_default=True)
        experiment_name: str | None = None
        artifact_location: str | None = None
        autolog: bool = False
        log_models: bool = False
        nested: bool = True

        @field_validator("tracking_uri")
        @classmethod
        def _resolve(cls, value: str | None, info: ValidationInfo) -> str | None:
            """Relative paths are the project's, not the working directory's."""
            project_root = (info.context or {}).get("project_root")
            if value is None or not value.strip():
                return _default_uri(project_root) if project_root else None
            root = Path(project_root or ".")
            if value.startswith("sqlite:///"):
                path = Path(value.removeprefix("sqlite:///"))
                return f"sqlite:///{path if path.is_absolute() else root / path}"
            if value.startswith("sqlite:"):
                raise ValueError("an SQLite tracking URI looks like 'sqlite:///path/mlflow.db'")
            if "://" in value or value.startswith("databricks"):
                return value
            path = Path(value).expanduser()
            return str(path if path.is_absolute() else root / path)

        @field_validator("experiment_name")
        @classmethod
        def _not_blank(cls, value: str | None) -> str | None:
            if value is not None and not value.strip():
                raise ValueError("give a name, or leave the option out to use the pipeline's")
            return value

    return MlflowTrackerConfig


class MlflowTrackerFlavor(Flavor):
    """``experiment_tracker.mlflow``: an :class:`MlflowExperimentTracker`."""

    kind = "experiment_tracker"
    name = "mlflow"
    config_class = deferred_config(_config_class)

    def build(self, config: Any) -> MlflowExperimentTracker:
        tracking_uri = config.tracking_uri
        if tracking_uri is None:
            from mlzen.config import load_settings

            tracking_uri = _default_uri(str(load_settings().project_root))
        return MlflowExperimentTracker(
            tracking_uri,
            experiment_name=config.experiment_name,
            artifact_location=config.artifact_location,
            autolog=config.autolog,
            log_models=config.log_models,
            nested=config.nested,
        )
