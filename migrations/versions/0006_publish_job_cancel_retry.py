"""Publish jobs: the `cancelled` status, cancel requests, retries and pruning.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30

- `status` may be `cancelled` (`claresia-sync jobs cancel`).
- `cancel_requested_at`: a cancel asked of a running job; the run stops at its next item.
- `retry_of`: the finished job a `jobs retry` re-runs (SET NULL when that one is pruned).
- `ix_publish_job_finished_at`: pruning finds old finished jobs without a full scan.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = "status IN ('queued', 'running', 'succeeded', 'partial', 'failed')"
NEW = "status IN ('queued', 'running', 'succeeded', 'partial', 'failed', 'cancelled')"


def upgrade() -> None:
    op.drop_constraint(op.f("ck_publish_job_status"), "publish_job", type_="check")
    op.create_check_constraint(op.f("ck_publish_job_status"), "publish_job", NEW)
    op.add_column(
        "publish_job", sa.Column("cancel_requested_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("publish_job", sa.Column("retry_of", sa.BigInteger(), nullable=True))
    op.create_foreign_key(
        op.f("fk_publish_job_retry_of_publish_job"),
        "publish_job",
        "publish_job",
        ["retry_of"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_index(
        "ix_publish_job_finished_at",
        "publish_job",
        ["finished_at"],
        postgresql_where=sa.text("finished_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_publish_job_finished_at", table_name="publish_job")
    op.drop_constraint(
        op.f("fk_publish_job_retry_of_publish_job"), "publish_job", type_="foreignkey"
    )
    op.drop_column("publish_job", "retry_of")
    op.drop_column("publish_job", "cancel_requested_at")
    op.execute("UPDATE publish_job SET status = 'failed' WHERE status = 'cancelled'")
    op.drop_constraint(op.f("ck_publish_job_status"), "publish_job", type_="check")
    op.create_check_constraint(op.f("ck_publish_job_status"), "publish_job", OLD)
