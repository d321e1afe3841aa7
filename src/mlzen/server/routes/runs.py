"""``/api/v1``: pipelines, runs, step runs, step logs, run comparison and deletion."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from mlzen.client import ArtifactVersion, Client, PipelineRun, StepRun
from mlzen.comparison import RunDiff
from mlzen.errors import ConfigError, NotFoundError
from mlzen.server import trust
from mlzen.server.auth import EditorUser, require_viewer
from mlzen.server.deps import ClientDep
from mlzen.server.schemas import (
    ArtifactVersionRef,
    DagEdge,
    DagNode,
    DeleteResult,
    LogChunk,
    Page,
    PipelineOut,
    RunDetail,
    RunOut,
    StepRunOut,
)
from mlzen.store import queries

router = APIRouter(dependencies=[Depends(require_viewer)])

Limit = Annotated[int, Query(ge=1, le=500, description="Page size.")]
# Bounded so that the database never sees an offset larger than its integers.
MAX_OFFSET = 10**12
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="How many to skip.")]


def run_out(run: PipelineRun) -> RunOut:
    return RunOut(
        id=run.id,
        name=run.name,
        pipeline_name=run.pipeline_name,
        status=run.status,
        created_at=run.created_at,
        ended_at=run.ended_at,
        duration=run.duration,
        stack=run.stack,
        parameters=run.parameters,
        resumed_from_id=run.resumed_from_id,
    )


def version_ref(version: ArtifactVersion) -> ArtifactVersionRef:
    return ArtifactVersionRef(
        id=version.id,
        name=version.name,
        version=version.version,
        data_type=version.data_type,
        size=version.size,
    )


def step_out(step: StepRun) -> StepRunOut:
    return StepRunOut(
        id=step.id,
        run_id=step.run_id,
        step_id=step.name,
        step_name=step.step_name,
        status=step.status,
        parameters=step.parameters,
        config=step.config,
        source=step.source,
        code_hash=step.code_hash,
        cache_key=step.cache_key,
        cache_key_parts=step.cache_key_parts,
        cached_from_id=step.cached_from_id,
        started_at=step.started_at,
        ended_at=step.ended_at,
        duration=step.duration,
        attempts=step.attempts,
        error=step.error,
        hook_error=step.hook_error,
        inputs={name: version_ref(v) for name, v in step.inputs.items()},
        outputs={name: version_ref(v) for name, v in step.outputs.items()},
        metadata=step.metadata,
    )


def dag_of(run: PipelineRun) -> tuple[list[DagNode], list[DagEdge]]:
    """The run's DAG from its spec, each node with its step run's status."""
    steps = run.steps
    nodes: list[DagNode] = []
    edges: list[DagEdge] = []
    for step_id, spec in run.spec.steps.items():
        step = steps.get(step_id)
        nodes.append(
            DagNode(
                id=step_id,
                step_name=spec.name,
                status=step.status if step else "pending",
                step_run_id=step.id if step else None,
                cached=bool(step and step.status == "cached"),
            )
        )
        for argument, ref in spec.inputs.items():
            edges.append(
                DagEdge(source=ref.step, target=step_id, output=ref.output, input=argument)
            )
        for upstream in spec.after:
            edges.append(DagEdge(source=upstream, target=step_id, output=None, input=None))
    return nodes, edges


# -- pipelines -------------------------------------------------------------------------


@router.get("/pipelines", response_model=Page[PipelineOut], tags=["pipelines"])
def list_pipelines(
    client: ClientDep,
    name: Annotated[str | None, Query(description="Only names containing this.")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[PipelineOut]:
    """Pipelines with their run counts, newest first."""
    rows = client.list_pipelines()
    if name:
        rows = [row for row in rows if name in row["name"]]
    items = [PipelineOut.model_validate(row) for row in rows[offset : offset + limit]]
    return Page(items=items, total=len(rows), limit=limit, offset=offset)


@router.get("/pipelines/{name}", response_model=PipelineOut, tags=["pipelines"])
def get_pipeline(name: str, client: ClientDep) -> PipelineOut:
    """One pipeline by name."""
    row = client.get_pipeline(name)
    count = queries.count_runs(client.store, pipeline=name)
    return PipelineOut(**{**row, "run_count": count})


# -- runs ------------------------------------------------------------------------------


@router.get("/runs", response_model=Page[RunOut], tags=["runs"])
def list_runs(
    client: ClientDep,
    pipeline: Annotated[str | None, Query(description="Only runs of this pipeline.")] = None,
    status: Annotated[str | None, Query(description="Only runs in this status.")] = None,
    created_after: Annotated[datetime | None, Query(description="UTC, inclusive.")] = None,
    created_before: Annotated[datetime | None, Query(description="UTC, exclusive.")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[RunOut]:
    """Runs, newest first, filtered and paged."""
    filters: dict[str, Any] = {
        "pipeline": pipeline,
        "status": status,
        "created_after": _naive_utc(created_after, "created_after"),
        "created_before": _naive_utc(created_before, "created_before"),
    }
    runs = client.list_pipeline_runs(**filters, limit=limit, offset=offset)
    total = queries.count_runs(client.store, **filters)
    return Page(items=[run_out(r) for r in runs], total=total, limit=limit, offset=offset)


@router.get("/runs/{run}", response_model=RunDetail, tags=["runs"])
def get_run(run: str, client: ClientDep) -> RunDetail:
    """A run (by id, name, unique id prefix or ``latest``) with its steps and DAG."""
    found = client.get_pipeline_run(run)
    nodes, edges = dag_of(found)
    return RunDetail(
        **run_out(found).model_dump(),
        spec=found.spec_data,
        code_version=found.code_version,
        environment=found.environment,
        heartbeat_at=found.heartbeat_at,
        error=found.error,
        metadata=found.metadata,
        steps=[step_out(s) for s in found.steps.values()],
        nodes=nodes,
        edges=edges,
    )


@router.delete("/runs/{run}", response_model=DeleteResult, tags=["runs"])
def delete_run(run: str, client: ClientDep, user: EditorUser) -> DeleteResult:
    """Delete a run and the artifact versions only it used (editor). A running run
    cannot be deleted."""
    found = client.get_pipeline_run(run)
    if found.status == "running":
        raise ConfigError(
            f"Run '{found.name}' is still running. Wait for it to finish, or stop it, "
            "then delete it.",
            run=found.name,
        )
    removed = client.store.delete_run(found.id)
    return DeleteResult(deleted=found.name, artifact_versions_removed=removed)


@router.get("/runs/{run}/steps", response_model=list[StepRunOut], tags=["runs"])
def list_run_steps(run: str, client: ClientDep) -> list[StepRunOut]:
    """A run's step runs in the order they started."""
    return [step_out(s) for s in client.get_pipeline_run(run).steps.values()]


@router.get("/runs/{run}/steps/{step_id}", response_model=StepRunOut, tags=["runs"])
def get_run_step(run: str, step_id: str, client: ClientDep) -> StepRunOut:
    """One step run of a run, by invocation id (``train``, ``train_2``)."""
    return step_out(_step_of(client, run, step_id))


@router.get("/step-runs/{step_run_id}", response_model=StepRunOut, tags=["runs"])
def get_step_run(step_run_id: str, client: ClientDep) -> StepRunOut:
    """One step run by id."""
    return step_out(client.get_run_step(step_run_id))


@router.get("/step-runs/{step_run_id}/logs", response_model=LogChunk, tags=["runs"])
def step_logs(
    step_run_id: str,
    client: ClientDep,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Characters already read.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1_000_000, description="At most this many.")] = 200_000,
) -> LogChunk:
    """A step's captured output from ``offset``; poll with ``next_offset`` while it runs."""
    step = client.get_run_step(step_run_id)
    text = step.logs[offset : offset + limit]
    return LogChunk(
        step_run_id=step.id,
        status=step.status,
        offset=offset,
        next_offset=offset + len(text),
        text=text,
        complete=step.status != "running" and offset + len(text) >= len(step.logs),
    )


# -- comparison ------------------------------------------------------------------------


@router.get("/compare", response_model=RunDiff, tags=["runs"])
def compare_runs(
    old: Annotated[str, Query(description="The earlier run: id, name, prefix or latest.")],
    new: Annotated[str, Query(description="The later run.")],
    client: ClientDep,
    artifact: Annotated[str | None, Query(description="Only outputs named so.")] = None,
) -> Any:
    """What changed from run ``old`` to run ``new`` (as ``mlzen diff --json``). Outputs
    whose format can run code when loaded are compared by hash and metadata only."""
    from mlzen.comparison import compare_runs as compare

    diff = compare(
        client,
        client.get_pipeline_run(old),
        client.get_pipeline_run(new),
        artifact=artifact,
        loadable=lambda version: trust.loadable(version.materializer),
    )
    return diff.to_dict()


def _step_of(client: Client, run: str, step_id: str) -> StepRun:
    found = client.get_pipeline_run(run)
    step = found.steps.get(step_id)
    if step is None:
        raise NotFoundError(
            f"Run '{found.name}' has no step '{step_id}'. Its steps: "
            f"{', '.join(found.steps) or 'none yet'}.",
            run=found.name,
            step_name=step_id,
        )
    return step


def _naive_utc(value: datetime | None, name: str) -> datetime | None:
    """The store keeps naive UTC times; an aware filter value is converted to one.

    Raises:
        ConfigError: In UTC the time falls outside the years 1-9999.
    """
    if value is None or value.tzinfo is None:
        return value
    from datetime import UTC

    try:
        return value.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:
        raise ConfigError(
            f"'{name}' is {value.isoformat()}, which is outside the years 1-9999 in UTC. "
            "Give a time within them.",
            parameter=name,
        ) from None
