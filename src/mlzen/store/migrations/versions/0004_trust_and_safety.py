"""Trust boundary and data safety: artifact file manifests and store ids, hook failures,
server sessions and login throttling.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ID = sa.String(32)


def upgrade() -> None:
    # {relative path: size} of the files saved, so an existence check notices deleted files.
    op.add_column("artifact_versions", sa.Column("files", sa.JSON))
    # The artifact store holding a version's files; readers check it is theirs.
    op.add_column("artifact_versions", sa.Column("artifact_store_id", sa.String(32)))
    op.create_index("ix_artifact_versions_store", "artifact_versions", ["artifact_store_id"])
    # What a step's success or failure hook raised; the step keeps its own status.
    op.add_column("step_runs", sa.Column("hook_error", sa.Text))
    op.create_table(
        "server_sessions",
        # SHA-256 of the session token the cookie carries; the token itself is not kept.
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("user_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_server_sessions_user", "server_sessions", ["user_id"])
    op.create_table(
        "login_attempts",
        # SHA-256 of the user name or the client address a login came from.
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("window_start", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("login_attempts")
    op.drop_index("ix_server_sessions_user", "server_sessions")
    op.drop_table("server_sessions")
    with op.batch_alter_table("step_runs") as batch:
        batch.drop_column("hook_error")
    op.drop_index("ix_artifact_versions_store", "artifact_versions")
    with op.batch_alter_table("artifact_versions") as batch:
        batch.drop_column("artifact_store_id")
        batch.drop_column("files")
