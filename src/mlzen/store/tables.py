"""The metadata store's schema, as SQLAlchemy Core tables.

Changing a table means adding an Alembic migration in ``migrations/versions``; a test
checks that the migrations and these tables agree.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

ID = String(32)
metadata = MetaData()

pipelines = Table(
    "pipelines",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("created_at", DateTime, nullable=False),
)

pipeline_runs = Table(
    "pipeline_runs",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("pipeline_id", ID, ForeignKey("pipelines.id", ondelete="CASCADE"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("spec", JSON, nullable=False),
    Column("parameters", JSON, nullable=False),
    Column("stack", String(255), nullable=False),
    Column("code_version", JSON, nullable=False),
    Column("environment", JSON, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("ended_at", DateTime),
    Column("heartbeat_at", DateTime, nullable=False),
    Column("lease_seconds", Float, nullable=False),
    Column("error", Text),
    Column("resumed_from_id", ID),
    Index("ix_pipeline_runs_pipeline_created", "pipeline_id", "created_at"),
    Index("ix_pipeline_runs_status", "status"),
    Index("ix_pipeline_runs_created", "created_at"),
)

step_runs = Table(
    "step_runs",
    metadata,
    Column("id", ID, primary_key=True),
    Column("run_id", ID, ForeignKey("pipeline_runs.id", ondelete="CASCADE"), nullable=False),
    Column("step_id", String(255), nullable=False),
    Column("step_name", String(255), nullable=False),
    Column("status", String(16), nullable=False),
    Column("parameters", JSON, nullable=False),
    Column("config", JSON, nullable=False),
    Column("source", Text, nullable=False),
    Column("code_hash", String(64), nullable=False),
    Column("cache_key", String(64), nullable=False),
    Column("cache_key_parts", JSON, nullable=False),
    Column("cached_from_id", ID),
    Column("started_at", DateTime, nullable=False),
    Column("ended_at", DateTime),
    Column("attempts", Integer, nullable=False, default=0),
    Column("error", Text),
    Column("logs", Text),
    # What the step's success or failure hook raised (the step keeps its own status).
    Column("hook_error", Text),
    UniqueConstraint("run_id", "step_id", name="uq_step_runs_run_step"),
    Index("ix_step_runs_cache_key", "cache_key", "status"),
    Index("ix_step_runs_step_name", "step_name"),
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("created_at", DateTime, nullable=False),
)

artifact_versions = Table(
    "artifact_versions",
    metadata,
    Column("id", ID, primary_key=True),
    Column("artifact_id", ID, ForeignKey("artifacts.id", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("uri", Text, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("materializer", String(255), nullable=False),
    Column("data_type", String(255), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("metadata", JSON, nullable=False),
    Column("producer_step_run_id", ID, ForeignKey("step_runs.id", ondelete="SET NULL")),
    Column("created_at", DateTime, nullable=False),
    # {relative path: size} of the files saved; ``None`` for versions saved before 0004.
    Column("files", JSON),
    # The id of the artifact store holding the files (``mlzen.artifacts.identity``);
    # ``None`` for versions saved before 0004 that no store has adopted yet.
    Column("artifact_store_id", String(32)),
    UniqueConstraint("artifact_id", "version", name="uq_artifact_versions_artifact_version"),
    Index("ix_artifact_versions_content_hash", "content_hash"),
    Index("ix_artifact_versions_store", "artifact_store_id"),
)

step_run_artifacts = Table(
    "step_run_artifacts",
    metadata,
    Column("step_run_id", ID, ForeignKey("step_runs.id", ondelete="CASCADE"), primary_key=True),
    Column("direction", String(6), primary_key=True),
    Column("name", String(255), primary_key=True),
    Column(
        "artifact_version_id",
        ID,
        ForeignKey("artifact_versions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Index("ix_step_run_artifacts_version", "artifact_version_id", "direction"),
)

run_metadata = Table(
    "run_metadata",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("entity_type", String(16), nullable=False),
    Column("entity_id", ID, nullable=False),
    Column("key", String(255), nullable=False),
    # JSON text encoded by mlzen: in a JSON column SQLite's numeric affinity would turn
    # a stored 2.0 into the integer 2.
    Column("value", Text, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Index("ix_run_metadata_entity", "entity_type", "entity_id"),
)

# -- the stack registry (always in the project's own store, see ``mlzen.stack``) -----

stack_components = Table(
    "stack_components",
    metadata,
    Column("id", ID, primary_key=True),
    Column("kind", String(64), nullable=False),
    Column("name", String(255), nullable=False),
    Column("flavor", String(255), nullable=False),
    # As the user gave it: secret references stay unresolved, defaults unfilled.
    Column("config", JSON, nullable=False),
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("kind", "name", name="uq_stack_components_kind_name"),
)

stacks = Table(
    "stacks",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    # {kind: component name}; a kind left out is the local component of that kind.
    Column("components", JSON, nullable=False),
    Column("created_at", DateTime, nullable=False),
)

secrets = Table(
    "secrets",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    # A Fernet token of the secret's name and values (JSON); see ``mlzen.secrets``.
    Column("ciphertext", Text, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

project_settings = Table(
    "project_settings",
    metadata,
    Column("key", String(255), primary_key=True),
    Column("value", Text, nullable=False),
)

# -- the model control plane ----------------------------------------------------------

models = Table(
    "models",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("description", Text),
    Column("created_at", DateTime, nullable=False),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", ID, primary_key=True),
    Column("model_id", ID, ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=False),
    # none / staging / production / archived; at most one version per model holds
    # staging or production (enforced by promote, which demotes the previous holder).
    Column("stage", String(16), nullable=False),
    Column("description", Text),
    # The pipeline run that created this version, if a run did.
    Column("run_id", ID, ForeignKey("pipeline_runs.id", ondelete="SET NULL")),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    UniqueConstraint("model_id", "version", name="uq_model_versions_model_version"),
    Index("ix_model_versions_model_stage", "model_id", "stage"),
)

model_version_artifacts = Table(
    "model_version_artifacts",
    metadata,
    Column(
        "model_version_id",
        ID,
        ForeignKey("model_versions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    # The output name the artifact is reached by (``get_artifact("model")``).
    Column("name", String(255), primary_key=True),
    Column(
        "artifact_version_id",
        ID,
        ForeignKey("artifact_versions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("step_run_id", ID, ForeignKey("step_runs.id", ondelete="SET NULL")),
    Column("created_at", DateTime, nullable=False),
    Index("ix_model_version_artifacts_version", "artifact_version_id"),
)

# -- visualizations, stored as files beside their artifact -----------------------------

artifact_visualizations = Table(
    "artifact_visualizations",
    metadata,
    Column("id", ID, primary_key=True),
    Column(
        "artifact_version_id",
        ID,
        ForeignKey("artifact_versions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("name", String(255), nullable=False),
    # html / png / svg / csv / markdown
    Column("kind", String(16), nullable=False),
    Column("uri", Text, nullable=False),
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("artifact_version_id", "name", name="uq_artifact_visualizations_name"),
)

# -- model deployments ------------------------------------------------------------------

deployments = Table(
    "deployments",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column(
        "model_version_id",
        ID,
        ForeignKey("model_versions.id", ondelete="SET NULL"),
    ),
    Column("flavor", String(64), nullable=False),
    # starting / running / stopped / crashed
    Column("status", String(16), nullable=False),
    Column("url", Text),
    Column("pid", Integer),
    Column("config", JSON, nullable=False),
    Column("log_path", Text),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

# -- the team server: users and API keys --------------------------------------------

users = Table(
    "users",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),
    # admin / editor / viewer
    Column("role", String(16), nullable=False),
    Column("created_at", DateTime, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(255), nullable=False),
    Column("user_id", ID, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    # The first characters of the key, shown in listings and used to find the row;
    # the key itself is stored only as a hash.
    Column("prefix", String(32), nullable=False, unique=True),
    Column("key_hash", Text, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("last_used_at", DateTime),
    Column("revoked_at", DateTime),
)


# A dashboard login: the cookie carries a random token, the store its SHA-256, so logging
# out (deleting the row) ends the session on every server process at once.
server_sessions = Table(
    "server_sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", ID, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False),
    Index("ix_server_sessions_user", "user_id"),
)

# Dashboard and API logins counted per user name and per client address (each key a
# SHA-256), so every server process over one store throttles the same guesses.
login_attempts = Table(
    "login_attempts",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("attempts", Integer, nullable=False),
    Column("window_start", DateTime, nullable=False),
)
