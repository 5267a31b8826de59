"""Telemetry of real organisations (issue 16): skills analytics, the activity feed, sources.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30

- `skill_usage_daily`: Claude Enterprise skills analytics, one row per UTC day x skill (x user,
  x rbac group), upserted; first/last seen, last changed and how often it changed.
- `org_activity`: Compliance activity feed events, one per activity id, append-only (the
  `telemetry_append_only` trigger of 0002).
- `telemetry_source`: each source's checkpoint and last run per organisation.
- The analyst role reads the first two.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NOW = sa.text("now()")

GRANTS = """
CREATE TRIGGER org_activity_no_update BEFORE UPDATE OR DELETE ON org_activity
    FOR EACH ROW EXECUTE FUNCTION telemetry_append_only();
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'claresia_analyst') THEN
        GRANT SELECT ON skill_usage_daily, org_activity TO claresia_analyst;
    END IF;
END $$;
"""


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    default = None if nullable else _NOW
    return sa.Column(name, sa.DateTime(timezone=True), server_default=default, nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "skill_usage_daily",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("org_id", sa.Text(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("breakdown", sa.Text(), nullable=False),
        sa.Column("skill_name", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("rbac_group_id", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("published_name", sa.Text(), nullable=True),
        sa.Column("tenant_slug", sa.Text(), nullable=True),
        sa.Column("parent_tenant_slug", sa.Text(), nullable=True),
        sa.Column("skill_id", sa.Text(), nullable=True),
        sa.Column("archetype_slug", sa.Text(), nullable=True),
        sa.Column("invocation_count", sa.Integer(), nullable=True),
        sa.Column("distinct_user_count", sa.Integer(), nullable=True),
        sa.Column("chat_conversations", sa.Integer(), nullable=True),
        sa.Column("claude_code_sessions", sa.Integer(), nullable=True),
        sa.Column("cowork_sessions", sa.Integer(), nullable=True),
        sa.Column("estimated_overage_spend_usd", sa.Numeric(), nullable=True),
        sa.Column("attributed_list_price_usd", sa.Numeric(), nullable=True),
        sa.Column("currency", sa.Text(), nullable=True),
        sa.Column("raw", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("row_hash", sa.Text(), nullable=False),
        _ts("first_seen_at"),
        _ts("last_seen_at"),
        _ts("last_changed_at"),
        sa.Column("revision_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.CheckConstraint(
            "breakdown IN ('skill', 'user', 'rbac_group')",
            name=op.f("ck_skill_usage_daily_breakdown"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_skill_usage_daily")),
        sa.UniqueConstraint(
            "org_id",
            "day",
            "breakdown",
            "skill_name",
            "user_id",
            "rbac_group_id",
            name=op.f("uq_skill_usage_daily_org_id_day_breakdown_skill_name_user_id_rbac_group_id"),
        ),
    )
    op.create_index("ix_skill_usage_daily_tenant_day", "skill_usage_daily", ["tenant_slug", "day"])
    op.create_table(
        "org_activity",
        sa.Column("activity_id", sa.Text(), nullable=False),
        sa.Column("org_id", sa.Text(), nullable=False),
        sa.Column("activity_type", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _ts("ingested_at"),
        sa.Column("actor_type", sa.Text(), nullable=True),
        sa.Column("actor_id", sa.Text(), nullable=True),
        sa.Column("subject_id", sa.Text(), nullable=True),
        sa.Column("subject_name", sa.Text(), nullable=True),
        sa.Column("tenant_slug", sa.Text(), nullable=True),
        sa.Column("skill_id", sa.Text(), nullable=True),
        sa.Column("repair_job_id", sa.BigInteger(), nullable=True),
        sa.Column("raw", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("activity_id", name=op.f("pk_org_activity")),
    )
    op.create_index("ix_org_activity_org_time", "org_activity", ["org_id", "created_at"])
    op.create_table(
        "telemetry_source",
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("org_id", sa.Text(), nullable=False),
        sa.Column("cursor", sa.Text(), nullable=True),
        sa.Column("cursor_day", sa.Date(), nullable=True),
        sa.Column("backfill_cursor", sa.Text(), nullable=True),
        sa.Column("latest_available_day", sa.Date(), nullable=True),
        _ts("last_run_at", nullable=True),
        _ts("last_success_at", nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_rows", sa.Integer(), nullable=True),
        _ts("newest_data_at", nullable=True),
        sa.Column("errors_total", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("source", "org_id", name=op.f("pk_telemetry_source")),
    )
    op.execute(GRANTS)


def downgrade() -> None:
    op.drop_table("telemetry_source")
    op.execute("DROP TRIGGER org_activity_no_update ON org_activity")
    op.drop_index("ix_org_activity_org_time", table_name="org_activity")
    op.drop_table("org_activity")
    op.drop_index("ix_skill_usage_daily_tenant_day", table_name="skill_usage_daily")
    op.drop_table("skill_usage_daily")
