"""Telemetry: append-only rows, and the per-invocation analyst view the report reads.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21

- `telemetry_event` refuses UPDATE (row trigger, cloned to every partition, present and future)
  and a DELETE on the table itself (statement trigger). What stays possible is what retention
  and partition upkeep need: dropping a month's partition, and deleting from a partition
  directly (`telemetry_event_ensure_partition` moves rows out of the default one).
- `telemetry_event_id` refuses UPDATE; its rows are deleted only by retention, and the foreign
  key keeps any id that still has an event.
- `telemetry_invocation`: one row per event without the raw JSON, for analysts and
  `claresia-sync telemetry report` (percentiles over any period, which the daily view cannot give).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY = """
CREATE FUNCTION telemetry_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'telemetry is an audit trail; old months are removed by retention only';
END $$;
CREATE TRIGGER telemetry_event_no_update BEFORE UPDATE ON telemetry_event
    FOR EACH ROW EXECUTE FUNCTION telemetry_append_only();
CREATE TRIGGER telemetry_event_no_delete BEFORE DELETE ON telemetry_event
    FOR EACH STATEMENT EXECUTE FUNCTION telemetry_append_only();
CREATE TRIGGER telemetry_event_id_no_update BEFORE UPDATE ON telemetry_event_id
    FOR EACH ROW EXECUTE FUNCTION telemetry_append_only();
"""

INVOCATION_VIEW = """
CREATE VIEW telemetry_invocation AS
SELECT record_id, event_id, event_type, status, occurred_at, ingested_at,
       (occurred_at AT TIME ZONE 'UTC')::date AS day,
       org_id, workspace_id, tenant_slug, parent_tenant_slug,
       coalesce(parent_tenant_slug, tenant_slug) AS root_tenant_slug,
       skill_id, skill_name, remote_skill_id, skill_version, actor_user_id, invocation_id,
       model, input_tokens, output_tokens, cost_usd, duration_ms, error_type, error_message,
       footer_md
FROM telemetry_event;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'claresia_analyst') THEN
        GRANT SELECT ON telemetry_invocation TO claresia_analyst;
    END IF;
END $$;
"""


def upgrade() -> None:
    op.execute(APPEND_ONLY)
    op.execute(INVOCATION_VIEW)


def downgrade() -> None:
    op.execute("DROP VIEW telemetry_invocation")
    op.execute("DROP TRIGGER telemetry_event_id_no_update ON telemetry_event_id")
    op.execute("DROP TRIGGER telemetry_event_no_delete ON telemetry_event")
    op.execute("DROP TRIGGER telemetry_event_no_update ON telemetry_event")
    op.execute("DROP FUNCTION telemetry_append_only()")
