"""Indexes for the listings: a tenant's sessions and edits, newest first, paged on (created_at, id).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_sessions_tenant_created", "sessions", ["tenant_id", "created_at", "id"])
    op.create_index("ix_versions_tenant_created", "versions", ["tenant_id", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_versions_tenant_created", table_name="versions")
    op.drop_index("ix_sessions_tenant_created", table_name="sessions")
