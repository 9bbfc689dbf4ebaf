"""Experiment name on ledger rows; feedback on versions; shadow-traffic versions.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("versions") as batch:
        batch.add_column(sa.Column("shadow_of", sa.Integer(), nullable=True))
    with op.batch_alter_table("attempts") as batch:
        batch.add_column(sa.Column("experiment", sa.String(length=80), nullable=True))
        batch.create_index("ix_attempts_experiment", ["experiment"])
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("version_id", sa.String(length=40), nullable=False),
        sa.Column("verdict", sa.String(length=20), nullable=True),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["version_id"], ["versions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_feedback_version_id", "feedback", ["version_id"])


def downgrade() -> None:
    op.drop_index("ix_feedback_version_id", table_name="feedback")
    op.drop_table("feedback")
    with op.batch_alter_table("attempts") as batch:
        batch.drop_index("ix_attempts_experiment")
        batch.drop_column("experiment")
    with op.batch_alter_table("versions") as batch:
        batch.drop_column("shadow_of")
