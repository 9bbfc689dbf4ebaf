"""Per-session version counter, so version numbers are allocated atomically.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("next_version", sa.Integer(), nullable=False, server_default="0"))
    op.execute(
        "UPDATE sessions SET next_version = "
        "(SELECT COALESCE(MAX(number) + 1, 0) FROM versions WHERE versions.session_id = sessions.id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("next_version")
