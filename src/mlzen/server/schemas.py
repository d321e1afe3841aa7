"""The REST API's request and response bodies (pydantic models).

Every route answers with one of these, so ``/openapi.json`` describes every response
exactly. Times are UTC.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

from mlzen.server.auth import Role, User

T = TypeVar("T")


class Health(BaseModel):
    status: str


class ErrorBody(BaseModel):
    """What a request that failed on purpose answers."""

    error: str = Field(description="The mlzen error class, e.g. NotFoundError.")
    detail: str = Field(description="What went wrong and how to fix it.")
    fields: dict[str, str | int | float | bool] = Field(default_factory=dict)


class Page(BaseModel, Generic[T]):
    """One page of a list: ``items`` from ``offset``, of ``total`` matching ones."""

    items: list[T]
    total: int
    limit: int
    offset: int


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=255)
    password: str = Field(min_length=1, max_length=1024)


class LoginResponse(BaseModel):
    user: User
    csrf_token: str = Field(
        description="Send it in the X-CSRF-Token header with the session cookie on every "
        "request that changes something."
    )


class UserOut(BaseModel):
    id: str
    name: str
    role: Role
    created_at: datetime


class Message(BaseModel):
    message: str


JSONValue = Any


# -- pipelines and runs ------------------------------------------------------------------


class PipelineOut(BaseModel):
    id: str
    name: str
    created_at: datetime
    run_count: int


class RunOut(BaseModel):
    """A run as lists show it."""

    id: str
    name: str
    pipeline_name: str
    status: str
    created_at: datetime
    ended_at: datetime | None
    duration: float | None = Field(description="Seconds; null while running.")
    stack: str
    parameters: dict[str, Any]
    resumed_from_id: str | None


class ArtifactVersionRef(BaseModel):
    """A link to an artifact version."""

    id: str
    name: str
    version: int
    data_type: str
    size: int


class StepRunOut(BaseModel):
    """One step run: parameters, timings, cache information, inputs and outputs."""

    id: str
    run_id: str
    step_id: str = Field(description="The invocation id in the pipeline (train, train_2).")
    step_name: str
    status: str
    parameters: dict[str, Any]
    config: dict[str, Any]
    source: str
    code_hash: str
    cache_key: str
    cache_key_parts: dict[str, Any]
    cached_from_id: str | None
    started_at: datetime
    ended_at: datetime | None
    duration: float | None
    attempts: int
    error: str | None
    hook_error: str | None = Field(
        None,
        description="What the step's on_success or on_failure hook raised, with its "
        "traceback; the step's status does not depend on it.",
    )
    inputs: dict[str, ArtifactVersionRef]
    outputs: dict[str, ArtifactVersionRef]
    metadata: dict[str, Any]


class DagNode(BaseModel):
    id: str = Field(description="The step invocation id.")
    step_name: str
    status: str = Field(description="The step run's status, or 'pending' if it has none.")
    step_run_id: str | None
    cached: bool


class DagEdge(BaseModel):
    source: str
    target: str
    output: str | None = Field(description="The source's output; null for an .after() edge.")
    input: str | None = Field(description="The target's argument; null for an .after() edge.")


class RunDetail(RunOut):
    """A run with its step runs and the DAG of its spec."""

    spec: dict[str, Any]
    code_version: dict[str, Any]
    environment: dict[str, Any]
    heartbeat_at: datetime
    error: str | None
    metadata: dict[str, Any]
    steps: list[StepRunOut]
    nodes: list[DagNode]
    edges: list[DagEdge]


class LogChunk(BaseModel):
    """Step logs from byte-offset ``offset`` of the text; poll with ``next_offset``."""

    step_run_id: str
    status: str
    offset: int
    next_offset: int
    text: str
    complete: bool = Field(description="The step has finished: no more lines will come.")


class DeleteResult(BaseModel):
    deleted: str
    artifact_versions_removed: int


# -- artifacts ---------------------------------------------------------------------------


class ArtifactOut(BaseModel):
    id: str
    name: str
    created_at: datetime
    latest_version: int | None
    version_count: int
    total_size: int
    updated_at: datetime | None


class StepRunRef(BaseModel):
    id: str
    step_id: str
    step_name: str
    status: str
    run_id: str


class VisualizationOut(BaseModel):
    name: str
    kind: str = Field(description="html, png, svg, csv or markdown.")
    url: str = Field(description="Where its file is served.")


class ArtifactVersionOut(ArtifactVersionRef):
    uri: str
    content_hash: str
    materializer: str
    created_at: datetime
    producer_step_run_id: str | None


class ArtifactVersionDetail(ArtifactVersionOut):
    metadata: dict[str, Any]
    producer: StepRunRef | None
    consumers: list[StepRunRef]
    visualizations: list[VisualizationOut]


class Preview(BaseModel):
    """A bounded look at a value: a table for frames and arrays, else its text."""

    kind: str = Field(description="'table', 'text', or 'none' (not loaded; text says why).")
    data_type: str
    columns: list[str] = Field(default_factory=list)
    rows: list[list[Any]] = Field(default_factory=list)
    total_rows: int | None = None
    text: str | None = None
    truncated: bool


class StoredFile(BaseModel):
    path: str = Field(description="Relative to the artifact's folder.")
    size: int


class LineageNode(BaseModel):
    id: str
    kind: str = Field(description="'artifact_version' or 'step_run'.")
    label: str
    status: str | None = None
    run_id: str | None = None


class LineageEdge(BaseModel):
    source: str
    target: str
    name: str = Field(description="The output or input name on this edge.")


class Lineage(BaseModel):
    """The graph around an artifact version, ``depth`` hops up and down."""

    root: str
    nodes: list[LineageNode]
    edges: list[LineageEdge]


# -- stacks ------------------------------------------------------------------------------


class ComponentOut(BaseModel):
    name: str
    flavor: str
    config: dict[str, Any] = Field(description="Values of secret-looking options are hidden.")


class StackOut(BaseModel):
    """A stack and the name of its component of each kind."""

    name: str
    active: bool
    components: dict[str, str]
    created_at: datetime | None


class StackDetail(BaseModel):
    """A stack with each component's flavor and (redacted) config."""

    name: str
    active: bool
    components: dict[str, ComponentOut]
    created_at: datetime | None


# -- models ------------------------------------------------------------------------------


class ModelOut(BaseModel):
    id: str
    name: str
    description: str | None
    created_at: datetime
    version_count: int
    latest_version: int | None
    staging_version: int | None
    production_version: int | None


class ModelVersionOut(BaseModel):
    id: str
    model_name: str
    number: int
    stage: str = Field(description="none, staging, production or archived.")
    description: str | None
    run_id: str | None
    created_at: datetime
    updated_at: datetime


class ModelVersionDetail(ModelVersionOut):
    """A model version with its linked artifacts (by link name) and metadata."""

    artifacts: dict[str, ArtifactVersionRef]
    metadata: dict[str, Any]


class PromoteRequest(BaseModel):
    stage: str = Field(description="staging, production, archived or none.", max_length=16)
    force: bool = Field(
        default=False, description="Take a stage another version holds (it is archived)."
    )


# -- users and keys (admin) --------------------------------------------------------------


class UserCreate(BaseModel):
    name: str = Field(min_length=1, max_length=255)
    password: str = Field(min_length=1, max_length=1024)
    role: Role = "viewer"


class ApiKeyOut(BaseModel):
    """An API key as listings show it: never the key, never its hash."""

    id: str
    name: str
    prefix: str
    user_name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreate(BaseModel):
    user: str = Field(min_length=1, max_length=255, description="Whose key it is.")
    name: str = Field(default="default", min_length=1, max_length=255)


class ApiKeyCreated(BaseModel):
    """A new key: ``key`` is shown in this answer only."""

    key: str
    prefix: str
    name: str
    user_name: str
