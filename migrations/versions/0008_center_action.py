"""The Command Center's action log: who did what through the operator API or console, when.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30

- `center_action`: one row per request to act (publish, retry, cancel, quarantine replay, and
  refused attempts), written by `claresia_sync/center/actions.py`.
- Append-only: UPDATE and DELETE are refused for every role (a row trigger), as for telemetry;
  only the table's owner can still TRUNCATE it (the tests' reset does).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY = """
CREATE FUNCTION center_action_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'center_action is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'the Command Center action log is an audit trail';
END $$;
CREATE TRIGGER center_action_no_change BEFORE UPDATE OR DELETE ON center_action
    FOR EACH ROW EXECUTE FUNCTION center_action_append_only();
"""


def upgrade() -> None:
    op.create_table(
        "center_action",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("target", sa.Text(), nullable=True),
        sa.Column(
            "params",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("job_id", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "outcome IN ('ok', 'refused', 'error')", name=op.f("ck_center_action_outcome")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_center_action")),
    )
    op.create_index("ix_center_action_at", "center_action", ["at"])
    op.execute(APPEND_ONLY)


def downgrade() -> None:
    op.drop_table("center_action")  # its triggers go with it
    op.execute("DROP FUNCTION center_action_append_only()")
