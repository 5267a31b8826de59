"""A Claude Code prompt's usage, whatever export it comes in (issue 20; telemetry/otlp_usage.py).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07

- `claude_code_prompt` (per tenant, session and prompt: its usage so far and its first
  activation), `claude_code_request` (the api_request records counted: a retried export adds
  nothing) and `claude_code_activation` (a stored activation's session, prompt and account ids):
  written by the OTLP receiver in the export's transaction; `telemetry_event` (append-only) is
  never updated.
- `telemetry_invocation` shows a prompt's usage on its first activation (the smallest event id,
  an equality join: no per-row subquery), and the card footer its cost and duration
  (`claresia_footer_with_usage`: the same text as `normalise.render_footer`,
  tests/integration/test_otlp_usage.py compares them), plus the columns
  `claude_code_session_id`, `actor_account_id` and `claude_code_requests`.
- `telemetry_daily` and `skill_usage_by_source` read `telemetry_invocation` instead of the table,
  so their cost includes usage that came later. Usage columns are bigint/numeric sums now.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The footer's cost and duration as normalise.format_cost / format_duration write them.
FOOTER = """
CREATE FUNCTION claresia_footer_with_usage(footer text, cost numeric, duration_ms bigint)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT replace(footer, ' · [View record](',
        ' · $' || CASE WHEN cost >= 0.01 OR cost = 0 THEN round(cost, 2)::text
                      ELSE round(cost, 4)::text END
        || ' · ' || CASE WHEN duration_ms < 60000 THEN round(duration_ms / 1000.0, 1)::text || 's'
                         ELSE (duration_ms / 60000)::text || 'm '
                              || (duration_ms % 60000 / 1000)::text || 's' END
        || ' · [View record](')
$$;
"""

INVOCATION = """
CREATE VIEW telemetry_invocation AS
SELECT e.record_id, e.event_id, e.event_type, e.status, e.occurred_at, e.ingested_at,
       (e.occurred_at AT TIME ZONE 'UTC')::date AS day,
       e.org_id, e.workspace_id, e.tenant_slug, e.parent_tenant_slug,
       coalesce(e.parent_tenant_slug, e.tenant_slug) AS root_tenant_slug,
       e.skill_id, e.skill_name, e.remote_skill_id, e.skill_version, e.actor_user_id,
       e.invocation_id,
       coalesce(p.model, e.model) AS model,
       coalesce(p.input_tokens, e.input_tokens) AS input_tokens,
       coalesce(p.output_tokens, e.output_tokens) AS output_tokens,
       coalesce(p.cost_usd, e.cost_usd) AS cost_usd,
       coalesce(p.duration_ms, e.duration_ms) AS duration_ms,
       e.error_type, e.error_message,
       CASE WHEN p.requests > 0
            THEN claresia_footer_with_usage(e.footer_md, p.cost_usd, p.duration_ms)
            ELSE e.footer_md
       END AS footer_md,
       a.session_id AS claude_code_session_id,
       a.account_id AS actor_account_id,
       p.requests AS claude_code_requests
  FROM telemetry_event e
  LEFT JOIN claude_code_activation a ON a.event_id = e.event_id
  -- a prompt's usage shows on its first activation only: counted once
  LEFT JOIN claude_code_prompt p ON p.first_event_id = e.event_id AND p.requests > 0;
"""

DAILY = """
CREATE VIEW telemetry_daily AS
SELECT day, tenant_slug, parent_tenant_slug, skill_id,
       count(*) AS invocations,
       count(*) FILTER (WHERE status = 'failed') AS failures,
       round(count(*) FILTER (WHERE status = 'failed')::numeric / count(*), 4) AS failure_rate,
       coalesce(sum(cost_usd), 0) AS cost_usd,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) AS p50_duration_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS p95_duration_ms
  FROM telemetry_invocation
 GROUP BY 1, 2, 3, 4;
"""

BY_SOURCE = """
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
"""

GRANT = """
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'claresia_analyst') THEN
        GRANT SELECT ON {names} TO claresia_analyst;
    END IF;
END $$;
"""

VIEWS = ("skill_usage_by_source", "telemetry_daily", "telemetry_invocation")  # dependants first

# As 0002, 0001 and 0011 made them (the downgrade's).
OLD_INVOCATION = """
CREATE VIEW telemetry_invocation AS
SELECT record_id, event_id, event_type, status, occurred_at, ingested_at,
       (occurred_at AT TIME ZONE 'UTC')::date AS day,
       org_id, workspace_id, tenant_slug, parent_tenant_slug,
       coalesce(parent_tenant_slug, tenant_slug) AS root_tenant_slug,
       skill_id, skill_name, remote_skill_id, skill_version, actor_user_id, invocation_id,
       model, input_tokens, output_tokens, cost_usd, duration_ms, error_type, error_message,
       footer_md
FROM telemetry_event;
"""
OLD_DAILY = """
CREATE VIEW telemetry_daily AS
SELECT (occurred_at AT TIME ZONE 'UTC')::date AS day,
       tenant_slug,
       parent_tenant_slug,
       skill_id,
       count(*) AS invocations,
       count(*) FILTER (WHERE status = 'failed') AS failures,
       round(count(*) FILTER (WHERE status = 'failed')::numeric / count(*), 4) AS failure_rate,
       coalesce(sum(cost_usd), 0) AS cost_usd,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) AS p50_duration_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS p95_duration_ms
FROM telemetry_event
GROUP BY 1, 2, 3, 4;
"""
OLD_BY_SOURCE = BY_SOURCE.replace(
    "    SELECT tenant_slug, skill_id, day,\n           count(*) FILTER (WHERE event_type = "
    "'claude_code.skill_activated') AS cc_activations,",
    "    SELECT tenant_slug, skill_id, (occurred_at AT TIME ZONE 'UTC')::date AS day,\n"
    "           count(*) FILTER (WHERE event_type = 'claude_code.skill_activated') AS "
    "cc_activations,",
).replace(
    "      FROM telemetry_invocation\n     GROUP BY tenant_slug, skill_id, day\n",
    "      FROM telemetry_event\n"
    "     GROUP BY tenant_slug, skill_id, (occurred_at AT TIME ZONE 'UTC')::date\n",
)
assert "FROM telemetry_event\n" in OLD_BY_SOURCE
assert "FROM telemetry_invocation" not in OLD_BY_SOURCE


def upgrade() -> None:
    op.create_table(
        "claude_code_activation",
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("tenant_slug", sa.Text(), nullable=False),
        sa.Column("session_id", sa.Text(), nullable=False),
        sa.Column("prompt_id", sa.Text(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("account_uuid", sa.Text(), nullable=True),
        sa.Column("account_id", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_claude_code_activation")),
    )
    op.create_index(
        "ix_claude_code_activation_occurred_at", "claude_code_activation", ["occurred_at"]
    )
    op.create_table(
        "claude_code_prompt",
        sa.Column("tenant_slug", sa.Text(), nullable=False),
        sa.Column("session_id", sa.Text(), nullable=False),
        sa.Column("prompt_id", sa.Text(), nullable=False),
        sa.Column("first_event_id", sa.Text(), nullable=True),
        sa.Column("requests", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("cost_usd", sa.Numeric(), server_default=sa.text("0"), nullable=False),
        sa.Column("duration_ms", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("model", sa.Text(), nullable=True),
        sa.Column("model_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "first_seen_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint(
            "tenant_slug", "session_id", "prompt_id", name=op.f("pk_claude_code_prompt")
        ),
    )
    op.create_index(
        "ix_claude_code_prompt_first_event_id", "claude_code_prompt", ["first_event_id"]
    )
    op.create_table(
        "claude_code_request",
        sa.Column("tenant_slug", sa.Text(), nullable=False),
        sa.Column("session_id", sa.Text(), nullable=False),
        sa.Column("prompt_id", sa.Text(), nullable=False),
        sa.Column("request_key", sa.BigInteger(), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint(
            "tenant_slug",
            "session_id",
            "prompt_id",
            "request_key",
            name=op.f("pk_claude_code_request"),
        ),
    )
    op.create_index("ix_claude_code_request_received_at", "claude_code_request", ["received_at"])
    for view in VIEWS:
        op.execute(f"DROP VIEW {view}")
    op.execute(FOOTER)
    op.execute(INVOCATION)
    op.execute(DAILY)
    op.execute(BY_SOURCE)
    tables = ("claude_code_activation", "claude_code_prompt", "claude_code_request")
    op.execute(GRANT.format(names=", ".join((*VIEWS, *tables))))


def downgrade() -> None:
    for view in VIEWS:
        op.execute(f"DROP VIEW {view}")
    op.execute("DROP FUNCTION claresia_footer_with_usage(text, numeric, bigint)")
    op.execute(OLD_INVOCATION)
    op.execute(OLD_DAILY)
    op.execute(OLD_BY_SOURCE)
    op.execute(GRANT.format(names=", ".join(VIEWS)))
    op.drop_table("claude_code_request")
    op.drop_table("claude_code_prompt")
    op.drop_table("claude_code_activation")
