"""Publish jobs: a job over every tenant is split into one unit per root tenant.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07

- `parent_id`: a unit's job (its parent); units go with their parent (`ON DELETE CASCADE`).
- `units`: how many units a split job has (NULL: a job that is not split). A split job is never
  claimed or requeued itself: its units are, by any replica, and the last unit to finish ends it
  in its own transaction (`publish.jobs`).
- One unit per parent and root tenant (`ux_publish_job_unit`).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "publish_job",
        sa.Column(
            "parent_id",
            sa.BigInteger(),
            sa.ForeignKey("publish_job.id", ondelete="CASCADE"),
            nullable=True,
        ),
    )
    op.add_column("publish_job", sa.Column("units", sa.Integer(), nullable=True))
    op.create_index(
        "ux_publish_job_unit",
        "publish_job",
        ["parent_id", "tenant_id"],
        unique=True,
        postgresql_where=sa.text("parent_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ux_publish_job_unit", table_name="publish_job")
    op.drop_column("publish_job", "units")
    op.drop_column("publish_job", "parent_id")
