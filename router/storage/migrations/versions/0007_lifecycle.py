"""The edit lifecycle: queued edits (the queue is the versions table) and leases on running ones.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("versions") as batch:
        batch.add_column(sa.Column("queued_at", sa.Float(), nullable=True))
        batch.add_column(sa.Column("started_at", sa.Float(), nullable=True))
        batch.add_column(sa.Column("lease_owner", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", sa.Float(), nullable=True))
        batch.create_index("ix_versions_status_queued", ["status", "queued_at"])
        batch.create_index("ix_versions_status_lease", ["status", "lease_expires_at"])
    # edits left running by a version without leases: expired at once, so recovery interrupts them
    op.execute("UPDATE versions SET lease_expires_at = 0 WHERE status = 'running'")


def downgrade() -> None:
    with op.batch_alter_table("versions") as batch:
        batch.drop_index("ix_versions_status_lease")
        batch.drop_index("ix_versions_status_queued")
        batch.drop_column("lease_expires_at")
        batch.drop_column("lease_owner")
        batch.drop_column("started_at")
        batch.drop_column("queued_at")
