"""Initial schema: pipelines, runs, step runs, artifacts, lineage, metadata.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.String(32)


def upgrade() -> None:
    op.create_table(
        "pipelines",
        sa.Column("id", ID, primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "pipeline_runs",
        sa.Column("id", ID, primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column(
            "pipeline_id",
            ID,
            sa.ForeignKey("pipelines.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("parameters", sa.JSON, nullable=False),
        sa.Column("stack", sa.String(255), nullable=False),
        sa.Column("code_version", sa.JSON, nullable=False),
        sa.Column("environment", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("ended_at", sa.DateTime),
        sa.Column("heartbeat_at", sa.DateTime, nullable=False),
        sa.Column("lease_seconds", sa.Float, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("resumed_from_id", ID),
    )
    op.create_index(
        "ix_pipeline_runs_pipeline_created", "pipeline_runs", ["pipeline_id", "created_at"]
    )
    op.create_index("ix_pipeline_runs_status", "pipeline_runs", ["status"])
    op.create_index("ix_pipeline_runs_created", "pipeline_runs", ["created_at"])
    op.create_table(
        "step_runs",
        sa.Column("id", ID, primary_key=True),
        sa.Column(
            "run_id",
            ID,
            sa.ForeignKey("pipeline_runs.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("step_id", sa.String(255), nullable=False),
        sa.Column("step_name", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("parameters", sa.JSON, nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("cache_key", sa.String(64), nullable=False),
        sa.Column("cache_key_parts", sa.JSON, nullable=False),
        sa.Column("cached_from_id", ID),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("ended_at", sa.DateTime),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("logs", sa.Text),
        sa.UniqueConstraint("run_id", "step_id", name="uq_step_runs_run_step"),
    )
    op.create_index("ix_step_runs_cache_key", "step_runs", ["cache_key", "status"])
    op.create_index("ix_step_runs_step_name", "step_runs", ["step_name"])
    op.create_table(
        "artifacts",
        sa.Column("id", ID, primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "artifact_versions",
        sa.Column("id", ID, primary_key=True),
        sa.Column(
            "artifact_id",
            ID,
            sa.ForeignKey("artifacts.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("uri", sa.Text, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("materializer", sa.String(255), nullable=False),
        sa.Column("data_type", sa.String(255), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("producer_step_run_id", ID, sa.ForeignKey("step_runs.id", ondelete="SET NULL")),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("artifact_id", "version", name="uq_artifact_versions_artifact_version"),
    )
    op.create_index("ix_artifact_versions_content_hash", "artifact_versions", ["content_hash"])
    op.create_table(
        "step_run_artifacts",
        sa.Column(
            "step_run_id",
            ID,
            sa.ForeignKey("step_runs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("direction", sa.String(6), primary_key=True),
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column(
            "artifact_version_id",
            ID,
            sa.ForeignKey("artifact_versions.id", ondelete="CASCADE"),
            nullable=False,
        ),
    )
    op.create_index(
        "ix_step_run_artifacts_version",
        "step_run_artifacts",
        ["artifact_version_id", "direction"],
    )
    op.create_table(
        "run_metadata",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("entity_type", sa.String(16), nullable=False),
        sa.Column("entity_id", ID, nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_run_metadata_entity", "run_metadata", ["entity_type", "entity_id"])


def downgrade() -> None:
    for table in (
        "run_metadata",
        "step_run_artifacts",
        "artifact_versions",
        "artifacts",
        "step_runs",
        "pipeline_runs",
        "pipelines",
    ):
        op.drop_table(table)
