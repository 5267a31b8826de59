"""`skill_usage_by_source`: per tenant, skill and UTC day, what each telemetry source says, side
by side (issue 16): the daily skills analytics, Claude Code's per-event rows, the audit log.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VIEW = """
CREATE VIEW skill_usage_by_source AS
WITH daily AS (
    SELECT tenant_slug, skill_id, day,
           sum(invocation_count) AS invocations,
           sum(distinct_user_count) AS users,
           sum(claude_code_sessions) AS claude_code_sessions,
           sum(estimated_overage_spend_usd) AS overage_spend_usd,
           sum(attributed_list_price_usd) AS list_price_usd,
           sum(revision_count) AS revisions,
           max(last_changed_at) AS last_changed_at
      FROM skill_usage_daily
     WHERE breakdown = 'skill' AND tenant_slug IS NOT NULL
     GROUP BY tenant_slug, skill_id, day
), events AS (
    SELECT tenant_slug, skill_id, (occurred_at AT TIME ZONE 'UTC')::date AS day,
           count(*) FILTER (WHERE event_type = 'claude_code.skill_activated') AS cc_activations,
           count(DISTINCT actor_user_id)
               FILTER (WHERE event_type = 'claude_code.skill_activated') AS cc_users,
           sum(cost_usd) FILTER (WHERE event_type = 'claude_code.skill_activated') AS cc_cost_usd,
           count(*) FILTER (WHERE event_type IN ('skill.invoked', 'skill.failed')) AS audit_runs,
           count(*) FILTER (WHERE event_type = 'skill.failed') AS audit_failures,
           sum(cost_usd) FILTER (WHERE event_type IN ('skill.invoked', 'skill.failed'))
               AS audit_cost_usd
      FROM telemetry_event
     GROUP BY tenant_slug, skill_id, (occurred_at AT TIME ZONE 'UTC')::date
)
SELECT coalesce(d.tenant_slug, e.tenant_slug) AS tenant_slug,
       coalesce(d.skill_id, e.skill_id) AS skill_id,
       coalesce(d.day, e.day) AS day,
       d.invocations AS daily_invocations,
       d.users AS daily_users,
       d.claude_code_sessions AS daily_claude_code_sessions,
       d.overage_spend_usd AS daily_overage_spend_usd,
       d.list_price_usd AS daily_list_price_usd,
       d.revisions AS daily_revisions,
       d.last_changed_at AS daily_last_changed_at,
       coalesce(e.cc_activations, 0) AS claude_code_activations,
       coalesce(e.cc_users, 0) AS claude_code_users,
       e.cc_cost_usd AS claude_code_cost_usd,
       coalesce(e.audit_runs, 0) AS audit_invocations,
       coalesce(e.audit_failures, 0) AS audit_failures,
       e.audit_cost_usd
  FROM daily d
  FULL JOIN events e
    ON e.tenant_slug = d.tenant_slug AND e.skill_id = d.skill_id AND e.day = d.day;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'claresia_analyst') THEN
        GRANT SELECT ON skill_usage_by_source TO claresia_analyst;
    END IF;
END $$;
"""


def upgrade() -> None:
    op.execute(VIEW)


def downgrade() -> None:
    op.execute("DROP VIEW skill_usage_by_source")
