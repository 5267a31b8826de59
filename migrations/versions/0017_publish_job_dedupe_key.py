"""Publish jobs: a dedupe key, unique among queued jobs.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07

- `dedupe_key`: `jobs.enqueue(..., dedupe_key=...)` inserts with `ON CONFLICT DO NOTHING` on
  `ux_publish_job_dedupe_key` (unique while `status = 'queued'`, as procrastinate's
  `queueing_lock`) and returns the queued job on conflict: the drift check and the activity
  feed's repairs no longer look for one by hand. A claimed job leaves the index, so a new one
  may queue behind it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("publish_job", sa.Column("dedupe_key", sa.Text(), nullable=True))
    op.create_index(
        "ux_publish_job_dedupe_key",
        "publish_job",
        ["dedupe_key"],
        unique=True,
        postgresql_where=sa.text("status = 'queued'"),
    )


def downgrade() -> None:
    op.drop_index("ux_publish_job_dedupe_key", table_name="publish_job")
    op.drop_column("publish_job", "dedupe_key")
