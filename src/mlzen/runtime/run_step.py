"""``run_step``: the only place a step executes.

Every orchestrator (threads, processes, Ray, ...) calls this one function for each step
invocation; none re-implements any of it:

1. load the input artifacts' records and compute the cache key;
2. on a cache hit (or a step reused by a resumed run) record a step run pointing at the
   earlier outputs and stop;
3. otherwise load the inputs, call the function with logs captured, retrying with
   backoff;
4. save every output (content-addressed, atomic) and record the step run, its lineage
   and its metadata in one transaction; run the step's hooks.
"""

from __future__ import annotations

import contextlib
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlzen.artifacts.identity import ForeignArtifactError, store_identity, version_folder
from mlzen.artifacts.materializer import (
    SavedArtifact,
    load_artifact,
    materializer_by_name,
    save_artifact,
)
from mlzen.artifacts.store import ArtifactStore
from mlzen.artifacts.visualization import save_visualizations
from mlzen.errors import MlzenError, StepExecutionError
from mlzen.hooks import FAILURE as FAILURE_HOOK
from mlzen.hooks import SUCCESS as SUCCESS_HOOK
from mlzen.hooks import hook_name, plan_call
from mlzen.model import ModelVersionInfo
from mlzen.runtime.caching import cache_key, cache_key_parts, output_available
from mlzen.runtime.context import StepContext, reset_step_context, set_step_context
from mlzen.runtime.fingerprint import code_fingerprint, source_of
from mlzen.runtime.lease import under_lease
from mlzen.runtime.logs import capture_logs
from mlzen.spec import StepSpec
from mlzen.steps import Step
from mlzen.store import queries
from mlzen.store.metadata import MetadataStore, OutputRecord
from mlzen.store.models import resolve_version

if TYPE_CHECKING:
    from mlzen.flavors import ExperimentTrackerComponent

COMPLETED, CACHED, FAILED = "completed", "cached", "failed"


@dataclass
class StepLaunch:
    """Everything ``run_step`` needs to know about one invocation, besides the step."""

    run_id: str
    run_name: str
    pipeline_name: str
    step: StepSpec
    inputs: dict[str, str] = field(default_factory=dict)
    reuse: dict[str, Any] | None = None
    code: dict[str, str] | None = None
    source: str | None = None
    tracker: ExperimentTrackerComponent | None = None
    tracker_run: Any = None

    @classmethod
    def for_step(cls, function_of: Step, **fields: Any) -> StepLaunch:
        """A launch carrying the step's code fingerprint and source, taken here in the
        driver: a worker process or cluster node may not have the source files."""
        func = function_of.func
        return cls(**fields, code=code_fingerprint(func), source=source_of(func))


@dataclass
class StepOutcome:
    """What happened to one invocation: status, output artifact version ids, error, and
    what its hook raised (which does not change the status)."""

    step_id: str
    status: str
    outputs: dict[str, str] = field(default_factory=dict)
    step_run_id: str | None = None
    error: str | None = None
    hook_error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status in (COMPLETED, CACHED)


def run_step(
    launch: StepLaunch, step: Step, store: MetadataStore, artifacts: ArtifactStore
) -> StepOutcome:
    """Execute (or reuse) one step invocation and record it in the metadata store."""
    spec = launch.step
    input_versions = queries.get_artifact_versions(store, launch.inputs.values())
    input_hashes = {arg: input_versions[v]["content_hash"] for arg, v in launch.inputs.items()}
    code = launch.code if launch.code is not None else code_fingerprint(step.func)
    parts = cache_key_parts(spec, code, input_hashes)
    key = cache_key(parts)
    record = {
        "run_id": launch.run_id,
        "step_id": spec.id,
        "step_name": spec.name,
        "parameters": spec.parameters,
        "config": {
            "source": spec.source,
            "enable_cache": spec.enable_cache,
            "retries": spec.retries,
            "settings": spec.settings,
            "extra": spec.extra,
        },
        "source": launch.source if launch.source is not None else source_of(step.func),
        "code_hash": parts["code"],
        "cache_key": key,
        "cache_key_parts": parts,
        "inputs": launch.inputs,
    }
    try:
        model_version = _model_version(launch, store)
    except MlzenError as exc:
        error = f"{type(exc).__name__}: {exc.message}"
        step_run_id = under_lease(lambda: store.start_step_run(**record))
        under_lease(
            lambda: store.finish_step_run(step_run_id, status=FAILED, attempts=0, error=error)
        )
        return StepOutcome(spec.id, FAILED, {}, step_run_id, error)
    model_version_id = model_version.id if model_version is not None else None
    # The artifact store's publishing lock (shared) spans from finding or writing output
    # folders to recording them, so garbage collection never sees them unreferenced.
    with artifacts.publishing():
        hit = _reusable(launch, key, store, artifacts)
        if hit is not None:
            step_run_id = under_lease(
                lambda: store.start_step_run(
                    **record,
                    status=CACHED,
                    cached_from_id=hit["id"],
                    outputs=hit["outputs"],
                    model_version_id=model_version_id,
                )
            )
    if hit is not None:
        _track_cached(launch, step_run_id, hit["id"])
        return StepOutcome(spec.id, CACHED, dict(hit["outputs"]), step_run_id)

    step_run_id = under_lease(lambda: store.start_step_run(**record))
    context = StepContext(
        run_id=launch.run_id,
        run_name=launch.run_name,
        pipeline_name=launch.pipeline_name,
        step_run_id=step_run_id,
        step_name=spec.name,
        invocation_id=spec.id,
        output_names=spec.output_names,
        parameters=dict(spec.parameters),
        model_version=model_version,
    )
    token = set_step_context(context)
    attempts = 0
    with contextlib.ExitStack() as publishing, capture_logs() as logs:
        try:
            if launch.tracker is not None:
                context.experiment_tracker = launch.tracker.start_step(
                    launch.tracker_run, **_tracked_step(launch, step_run_id)
                )
            kwargs = dict(spec.parameters)
            for argument, version_id in launch.inputs.items():
                row = input_versions[version_id]
                kwargs[argument] = load_artifact(
                    artifacts,
                    uri=_folder(artifacts, row),
                    content_hash=row["content_hash"],
                    materializer=row["materializer"],
                    data_type=row["data_type"],
                    name=row["name"],
                )
            while True:
                attempts += 1
                try:
                    value = step.func(**kwargs)
                    break
                except Exception:
                    if attempts > spec.retries:
                        raise
                    delay = spec.retry_delay * 2 ** (attempts - 1)
                    print(
                        f"Step '{spec.id}' failed (attempt {attempts} of {spec.retries + 1}):\n"
                        f"{traceback.format_exc()}Retrying in {delay:g}s."
                    )
                    time.sleep(delay)
            publishing.enter_context(artifacts.publishing())
            outputs = _save_outputs(spec, step, value, artifacts)
            _end_tracking(launch, context, COMPLETED)
        except Exception as exc:
            publishing.close()
            error = traceback.format_exc()
            with contextlib.suppress(Exception):  # the step's own error is what to report
                _end_tracking(launch, context, FAILED)
            hook_error = _call_hook(
                step.options.on_failure, FAILURE_HOOK, spec.id, exception=exc, context=context
            )
            reset_step_context(token)
            under_lease(
                lambda: store.finish_step_run(
                    step_run_id,
                    status=FAILED,
                    attempts=attempts,
                    error=error,
                    logs=logs.getvalue(),
                    metadata=context.metadata,
                    hook_error=hook_error,
                )
            )
            return StepOutcome(spec.id, FAILED, {}, step_run_id, error, hook_error)
        reset_step_context(token)
        created = under_lease(
            lambda: store.finish_step_run(
                step_run_id,
                status=COMPLETED,
                outputs=outputs,
                attempts=attempts,
                logs=logs.getvalue(),
                metadata=context.metadata,
                output_metadata=context.output_metadata,
                model_version_id=model_version_id,
                model_metadata=context.model_metadata,
            )
        )
    # After the success is recorded (and outside the publishing lock): a slow hook must
    # neither delay garbage collection nor leave a finished step looking unfinished.
    hook_error = _run_success_hook(step, store, context, step_run_id)
    return StepOutcome(spec.id, COMPLETED, created, step_run_id, hook_error=hook_error)


def _tracked_step(launch: StepLaunch, step_run_id: str) -> dict[str, Any]:
    return {
        "pipeline_name": launch.pipeline_name,
        "run_id": launch.run_id,
        "run_name": launch.run_name,
        "step_name": launch.step.name,
        "invocation_id": launch.step.id,
        "step_run_id": step_run_id,
        "parameters": dict(launch.step.parameters),
    }


def _end_tracking(launch: StepLaunch, context: StepContext, status: str) -> None:
    if launch.tracker is not None and context.experiment_tracker is not None:
        launch.tracker.end_step(
            context.experiment_tracker, status=status, metadata=dict(context.metadata)
        )


def _track_cached(launch: StepLaunch, step_run_id: str, cached_from: str) -> None:
    """Record a cache hit in the tracker; the hit is already recorded, so a tracker
    failure is reported, not raised."""
    if launch.tracker is None:
        return
    try:
        tracked = launch.tracker.start_step(
            launch.tracker_run, **_tracked_step(launch, step_run_id), cached_from=cached_from
        )
        launch.tracker.end_step(tracked, status=CACHED, metadata={})
    except Exception as exc:
        print(
            f"Warning: the experiment tracker did not record cached step '{launch.step.id}': {exc}"
        )


def _model_version(launch: StepLaunch, store: MetadataStore) -> ModelVersionInfo | None:
    """The model version this invocation's outputs are linked to, created for the run
    if the step asks for a new one and no other step of the run has created it yet."""
    model = launch.step.model
    if model is None:
        return None
    row = resolve_version(
        store,
        model["name"],
        model.get("version"),
        run_id=launch.run_id,
        description=model.get("description"),
    )
    return ModelVersionInfo(row["id"], row["model_name"], row["version"], row["stage"])


def _reusable(
    launch: StepLaunch, key: str, store: MetadataStore, artifacts: ArtifactStore
) -> dict[str, Any] | None:
    """An earlier step run whose outputs this invocation may take as its own."""
    candidates: list[dict[str, Any]] = []
    identity = store_identity(artifacts)
    here = identity.id if identity is not None else None
    if launch.reuse is not None and launch.reuse["cache_key"] == key:
        candidates = [
            hit
            for hit in queries.find_cache_hits(store, key, here)
            if hit["id"] == launch.reuse["id"]
        ]
    if not candidates and launch.step.enable_cache:
        candidates = queries.find_cache_hits(store, key, here)
    wanted = set(launch.step.output_names)
    for hit in candidates:
        if set(hit["outputs"]) != wanted:
            continue
        # Only outputs stored in this stack's artifact store can be taken as its own.
        try:
            folders = [
                (_folder(artifacts, row), row.get("files")) for row in hit["outputs"].values()
            ]
        except ForeignArtifactError:
            continue
        if all(output_available(artifacts, folder, files) for folder, files in folders):
            return {"id": hit["id"], "outputs": {n: r["id"] for n, r in hit["outputs"].items()}}
    return None


def _folder(artifacts: ArtifactStore, row: dict[str, Any]) -> str:
    """The folder of a recorded version in ``artifacts``; refused if stored elsewhere."""
    return version_folder(
        artifacts,
        artifact_store_id=row.get("artifact_store_id"),
        uri=row["uri"],
        content_hash=row["content_hash"],
        name=row["name"],
        version=row.get("version"),
    )


def _save_outputs(
    spec: StepSpec, step: Step, value: Any, artifacts: ArtifactStore
) -> list[OutputRecord]:
    declared = step.signature.outputs
    if not declared:
        return []
    if len(declared) == 1:
        values = [value]
    else:
        if not isinstance(value, tuple | list) or len(value) != len(declared):
            got = f"a {type(value).__name__}"
            if isinstance(value, tuple | list):
                got += f" of {len(value)}"
            raise StepExecutionError(
                f"Step '{spec.id}' declares {len(declared)} outputs "
                f"({', '.join(o.name for o in declared)}) but returned {got}. Return a tuple "
                "with one value per declared output.",
                step_name=spec.id,
            )
        values = list(value)
    identity = store_identity(artifacts)
    records: list[OutputRecord] = []
    for output, item in zip(declared, values, strict=True):
        _check_type(spec.id, output.name, output.annotation, item)
        saved = save_artifact(artifacts, item, name=output.name)
        records.append(
            OutputRecord(
                name=output.name,
                uri=saved.uri,
                content_hash=saved.content_hash,
                materializer=saved.materializer,
                data_type=saved.data_type,
                size=saved.size,
                metadata=saved.metadata,
                files=saved.files,
                visualizations=(
                    _visualize(spec.id, output.name, item, saved, artifacts)
                    if spec.settings.get("visualizations", True)
                    else []
                ),
                artifact_store_id=identity.id if identity is not None else None,
            )
        )
    return records


def _visualize(
    step_id: str, output_name: str, value: Any, saved: SavedArtifact, artifacts: ArtifactStore
) -> list[tuple[str, str, str]]:
    """Publish the output's visualizations; a failure is a warning in the step's logs."""
    try:
        materializer = materializer_by_name(saved.materializer)
        stored = save_visualizations(artifacts, value, name=output_name, materializer=materializer)
    except Exception as exc:
        message = exc.message if isinstance(exc, MlzenError) else f"{type(exc).__name__}: {exc}"
        print(f"Warning: step '{step_id}' output '{output_name}' has no visualizations: {message}")
        return []
    return [(v.name, v.kind, v.uri) for v in stored]


def _check_type(step_id: str, output_name: str, annotation: Any, value: Any) -> None:
    if not isinstance(annotation, type) or annotation in (object, Any):
        return
    if isinstance(value, annotation) or (annotation is float and type(value) is int):
        return
    raise StepExecutionError(
        f"Step '{step_id}' output '{output_name}' is declared as {annotation.__name__} but "
        f"the step returned a {type(value).__name__}. Return a {annotation.__name__} or fix "
        "the return annotation.",
        step_name=step_id,
        argument=output_name,
    )


def _run_success_hook(
    step: Step, store: MetadataStore, context: StepContext, step_run_id: str
) -> str | None:
    """Run the success hook of a recorded step run, with ``get_step_context()`` working
    inside it; record what it raised, and the metadata it logged, on the step run."""
    if step.options.on_success is None:
        return None
    logged = dict(context.metadata)
    token = set_step_context(context)
    try:
        hook_error = _call_hook(
            step.options.on_success, SUCCESS_HOOK, context.invocation_id, context=context
        )
    finally:
        reset_step_context(token)
    added = {k: v for k, v in context.metadata.items() if k not in logged or logged[k] != v}
    if added:
        store.add_metadata("step_run", step_run_id, added)
    if hook_error is not None:
        store.record_hook_error(step_run_id, hook_error)
    return hook_error


def _call_hook(hook: Any, kind: str, step_id: str, **offered: Any) -> str | None:
    """Call a hook with what it takes (``mlzen.hooks``); report, never raise, its error.

    Returns:
        What it raised, as a traceback headed by the hook's name, or ``None``.
    """
    if hook is None:
        return None
    try:
        args, kwargs = plan_call(hook, kind, step_id).arguments(offered)
        hook(*args, **kwargs)
    except Exception:
        error = f"{kind} hook '{hook_name(hook)}' raised:\n{traceback.format_exc()}"
        print(f"Step '{step_id}': {error}", file=sys.stderr)
        return error
    return None
