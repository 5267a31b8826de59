"""`skill_usage_by_source` covers every source (issue 24): per tenant, skill and UTC day, the
audit log's runs and failures, Claude Code's activations, each with its users, cost and tokens;
the per-event totals `telemetry report` counts; the skills analytics; the activity feed's
lifecycle events. It replaces the view of 0011/0014 (its columns kept, in the same order).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Keys are the union of the sources' (tenant, skill, day); a null skill id (an event whose
# skill could not be named) keeps its row, joined with IS NOT DISTINCT FROM.
BY_SOURCE = """
CREATE VIEW skill_usage_by_source AS
WITH daily AS (
    SELECT tenant_slug, skill_id, day,
           max(parent_tenant_slug) AS parent_tenant_slug,
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
    SELECT tenant_slug, skill_id, day,
           max(parent_tenant_slug) AS parent_tenant_slug,
           count(*) AS invocations,
           count(*) FILTER (WHERE status = 'failed') AS failures,
           count(DISTINCT actor_user_id) AS users,
           sum(cost_usd) AS cost_usd,
           sum(input_tokens) AS input_tokens,
           sum(output_tokens) AS output_tokens,
           count(*) FILTER (WHERE event_type = 'claude_code.skill_activated') AS cc_activations,
           count(DISTINCT actor_user_id)
               FILTER (WHERE event_type = 'claude_code.skill_activated') AS cc_users,
           sum(cost_usd) FILTER (WHERE event_type = 'claude_code.skill_activated') AS cc_cost_usd,
           sum(input_tokens) FILTER (WHERE event_type = 'claude_code.skill_activated')
               AS cc_input_tokens,
           sum(output_tokens) FILTER (WHERE event_type = 'claude_code.skill_activated')
               AS cc_output_tokens,
           count(*) FILTER (WHERE event_type IN ('skill.invoked', 'skill.failed')) AS audit_runs,
           count(*) FILTER (WHERE event_type = 'skill.failed') AS audit_failures,
           sum(cost_usd) FILTER (WHERE event_type IN ('skill.invoked', 'skill.failed'))
               AS audit_cost_usd,
           count(DISTINCT actor_user_id)
               FILTER (WHERE event_type IN ('skill.invoked', 'skill.failed')) AS audit_users,
           sum(input_tokens) FILTER (WHERE event_type IN ('skill.invoked', 'skill.failed'))
               AS audit_input_tokens,
           sum(output_tokens) FILTER (WHERE event_type IN ('skill.invoked', 'skill.failed'))
               AS audit_output_tokens
      FROM telemetry_invocation
     GROUP BY tenant_slug, skill_id, day
), activity AS (
    SELECT tenant_slug, skill_id, (created_at AT TIME ZONE 'UTC')::date AS day,
           count(*) AS events,
           count(*) FILTER (WHERE repair_job_id IS NOT NULL) AS repairs,
           string_agg(DISTINCT activity_type, ',' ORDER BY activity_type) AS types,
           max(created_at) AS last_at
      FROM org_activity
     WHERE tenant_slug IS NOT NULL AND skill_id IS NOT NULL
     GROUP BY 1, 2, 3
), keys AS (
    SELECT tenant_slug, skill_id, day FROM daily
    UNION SELECT tenant_slug, skill_id, day FROM events
    UNION SELECT tenant_slug, skill_id, day FROM activity
)
SELECT k.tenant_slug,
       k.skill_id,
       k.day,
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
       e.audit_cost_usd,
       coalesce(e.parent_tenant_slug, d.parent_tenant_slug) AS parent_tenant_slug,
       coalesce(e.parent_tenant_slug, d.parent_tenant_slug, k.tenant_slug) AS root_tenant_slug,
       coalesce(e.invocations, 0) AS invocations,
       coalesce(e.failures, 0) AS failures,
       coalesce(e.users, 0) AS users,
       coalesce(e.cost_usd, 0) AS cost_usd,
       coalesce(e.input_tokens, 0) AS input_tokens,
       coalesce(e.output_tokens, 0) AS output_tokens,
       e.cc_input_tokens AS claude_code_input_tokens,
       e.cc_output_tokens AS claude_code_output_tokens,
       coalesce(e.audit_users, 0) AS audit_users,
       e.audit_input_tokens,
       e.audit_output_tokens,
       coalesce(a.events, 0) AS activity_events,
       coalesce(a.repairs, 0) AS activity_repairs,
       a.types AS activity_types,
       a.last_at AS activity_last_at
  FROM keys k
  LEFT JOIN daily d ON d.tenant_slug = k.tenant_slug
       AND d.skill_id IS NOT DISTINCT FROM k.skill_id AND d.day = k.day
  LEFT JOIN events e ON e.tenant_slug = k.tenant_slug
       AND e.skill_id IS NOT DISTINCT FROM k.skill_id AND e.day = k.day
  LEFT JOIN activity a ON a.tenant_slug = k.tenant_slug
       AND a.skill_id IS NOT DISTINCT FROM k.skill_id AND a.day = k.day;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'claresia_analyst') THEN
        GRANT SELECT ON skill_usage_by_source TO claresia_analyst;
    END IF;
END $$;
"""

# As 0014 made it (the downgrade's).
OLD_BY_SOURCE = """
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
    SELECT tenant_slug, skill_id, day,
           count(*) FILTER (WHERE event_type = 'claude_code.skill_activated') AS cc_activations,
           count(DISTINCT actor_user_id)
               FILTER (WHERE event_type = 'claude_code.skill_activated') AS cc_users,
           sum(cost_usd) FILTER (WHERE event_type = 'claude_code.skill_activated') AS cc_cost_usd,
           count(*) FILTER (WHERE event_type IN ('skill.invoked', 'skill.failed')) AS audit_runs,
           count(*) FILTER (WHERE event_type = 'skill.failed') AS audit_failures,
           sum(cost_usd) FILTER (WHERE event_type IN ('skill.invoked', 'skill.failed'))
               AS audit_cost_usd
      FROM telemetry_invocation
     GROUP BY tenant_slug, skill_id, day
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
    op.execute("DROP VIEW skill_usage_by_source")
    op.execute(BY_SOURCE)


def downgrade() -> None:
    op.execute("DROP VIEW skill_usage_by_source")
    op.execute(OLD_BY_SOURCE)
