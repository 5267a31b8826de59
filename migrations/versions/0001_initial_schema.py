"""Initial schema: tenants, catalog, publications, publish queue, telemetry, analyst role.

Revision ID: 0001
Revises:
Create Date: 2026-11-21

Tables mirror `claresia_sync.db.models`; the raw SQL below adds what models cannot say: monthly
partitions of `telemetry_event`, the publish-job NOTIFY trigger, the analyst view and role.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Wakes the publisher as soon as a job is queued (payload: the job id).
PUBLISH_JOB_NOTIFY = """
CREATE FUNCTION publish_job_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('claresia_publish_job', NEW.id::text);
    RETURN NULL;
END $$;
CREATE TRIGGER publish_job_notify AFTER INSERT ON publish_job
    FOR EACH ROW EXECUTE FUNCTION publish_job_notify();
"""

# Monthly partitions (UTC months) named telemetry_event_YYYY_MM, made on demand by the writer
# (claresia_sync.telemetry.load.ensure_partitions) and ahead of time here. Rows whose month had no
# partition yet sit in telemetry_event_default and move into the month's partition when it is made.
# Retention drops a month's partition (then deletes its ids from telemetry_event_id).
TELEMETRY_PARTITIONS = """
CREATE TABLE telemetry_event_default PARTITION OF telemetry_event DEFAULT;

CREATE FUNCTION telemetry_event_ensure_partition(at timestamptz) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    lo timestamptz := date_trunc('month', at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    hi timestamptz := (date_trunc('month', at AT TIME ZONE 'UTC') + interval '1 month')
                      AT TIME ZONE 'UTC';
    part text := 'telemetry_event_' || to_char(at AT TIME ZONE 'UTC', 'YYYY_MM');
BEGIN
    IF to_regclass(quote_ident(part)) IS NOT NULL THEN
        RETURN part;
    END IF;
    -- Two writers making the same month take turns; the second finds it made.
    PERFORM pg_advisory_xact_lock(hashtext('telemetry_event_ensure_partition'));
    IF to_regclass(quote_ident(part)) IS NOT NULL THEN
        RETURN part;
    END IF;
    EXECUTE format(
        'CREATE TABLE %I (LIKE telemetry_event INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
    EXECUTE format(
        'WITH moved AS (DELETE FROM telemetry_event_default'
        ' WHERE occurred_at >= %L AND occurred_at < %L RETURNING *)'
        ' INSERT INTO %I SELECT * FROM moved', lo, hi, part);
    EXECUTE format(
        'ALTER TABLE telemetry_event ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
        part, lo, hi);
    RETURN part;
END $$;

SELECT telemetry_event_ensure_partition(m)
FROM generate_series(now() - interval '1 month', now() + interval '3 months', interval '1 month') m;
"""

# Daily figures per tenant and skill (UTC days), for analysts and `telemetry report`.
TELEMETRY_DAILY = """
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

# A read-only role for analysts. Roles are cluster-wide: many databases (tests) share it, so it
# is created once, concurrently safe, and never dropped by a downgrade. Without CREATEROLE the
# migration warns and goes on.
ANALYST_ROLE = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'claresia_analyst') THEN
        BEGIN
            CREATE ROLE claresia_analyst NOLOGIN;
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN NULL;  -- made meanwhile elsewhere
            WHEN insufficient_privilege THEN
                RAISE WARNING 'role claresia_analyst not created: % needs CREATEROLE',
                    current_user;
        END;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'claresia_analyst') THEN
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO claresia_analyst', current_schema());
        GRANT SELECT ON telemetry_event, telemetry_event_id, telemetry_quarantine,
            telemetry_daily TO claresia_analyst;
    END IF;
END $$;
"""

REVOKE_ANALYST = """
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'claresia_analyst') THEN
        EXECUTE format('REVOKE USAGE ON SCHEMA %I FROM claresia_analyst', current_schema());
    END IF;
END $$;
"""


def upgrade() -> None:
    op.create_table(
        "audit_checkpoint",
        sa.Column("org_id", sa.Text(), nullable=False),
        sa.Column("after_id", sa.Text(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("last_polled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_poll_status", sa.Text(), nullable=True),
        sa.Column("last_poll_error", sa.Text(), nullable=True),
        sa.Column("last_poll_events", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_audit_checkpoint")),
    )
    op.create_table(
        "catalog_skill",
        sa.Column("skill_id", sa.Text(), nullable=False),
        sa.Column("version", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("deprecated", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("ir", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("ir_hash", sa.Text(), nullable=False),
        sa.Column("source_path", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "ir_hash ~ '^sha256:[0-9a-f]{64}$'", name=op.f("ck_catalog_skill_ir_hash")
        ),
        sa.CheckConstraint(
            "skill_id ~ '^[a-z0-9]+(-[a-z0-9]+)*$' AND skill_id !~ '(anthropic|claude)'",
            name=op.f("ck_catalog_skill_skill_id"),
        ),
        sa.PrimaryKeyConstraint("skill_id", name=op.f("pk_catalog_skill")),
    )
    op.create_table(
        "telemetry_event_id",
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_telemetry_event_id")),
        sa.UniqueConstraint(
            "event_id", "occurred_at", name=op.f("uq_telemetry_event_id_event_id_occurred_at")
        ),
    )
    op.create_index(
        op.f("ix_telemetry_event_id_occurred_at"),
        "telemetry_event_id",
        ["occurred_at"],
        unique=False,
    )
    op.create_table(
        "telemetry_quarantine",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("org_id", sa.Text(), nullable=True),
        sa.Column("event_id", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("raw", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telemetry_quarantine")),
        sa.UniqueConstraint(
            "org_id", "event_id", name=op.f("uq_telemetry_quarantine_org_id_event_id")
        ),
    )
    op.create_index(
        "ix_telemetry_quarantine_received", "telemetry_quarantine", ["received_at"], unique=False
    )
    op.create_table(
        "tenant",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("slug", sa.Text(), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=False),
        sa.Column("parent_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$' AND slug !~ '(anthropic|claude)'",
            name=op.f("ck_tenant_slug"),
        ),
        sa.CheckConstraint("parent_id <> id", name=op.f("ck_tenant_not_own_parent")),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["tenant.id"],
            name=op.f("fk_tenant_parent_id_tenant"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenant")),
        sa.UniqueConstraint("slug", name=op.f("uq_tenant_slug")),
    )
    op.create_index(op.f("ix_tenant_parent_id"), "tenant", ["parent_id"], unique=False)
    op.create_table(
        "archetype",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("tenant_id", sa.BigInteger(), nullable=False),
        sa.Column("slug", sa.Text(), nullable=False),
        sa.Column("rbac_group_id", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$' AND slug !~ '(anthropic|claude)'",
            name=op.f("ck_archetype_slug"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
            name=op.f("fk_archetype_tenant_id_tenant"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_archetype")),
        sa.UniqueConstraint("tenant_id", "slug", name=op.f("uq_archetype_tenant_id_slug")),
    )
    op.create_table(
        "org_connection",
        sa.Column("tenant_id", sa.BigInteger(), nullable=False),
        sa.Column("org_id", sa.Text(), nullable=False),
        sa.Column("admin_key_ref", sa.Text(), nullable=False),
        sa.Column("base_url", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "admin_key_ref ~ '^(env:|file:)'", name=op.f("ck_org_connection_key_is_reference")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
            name=op.f("fk_org_connection_tenant_id_tenant"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_org_connection")),
        sa.UniqueConstraint("org_id", name=op.f("uq_org_connection_org_id")),
    )
    op.create_table(
        "publish_job",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("tenant_id", sa.BigInteger(), nullable=True),
        sa.Column("force", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "requested_by", sa.Text(), server_default=sa.text("current_user"), nullable=False
        ),
        sa.Column(
            "requested_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.Text(), server_default=sa.text("'queued'"), nullable=False),
        sa.Column(
            "stats",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "errors",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "lag_seconds",
            sa.Double(),
            sa.Computed("EXTRACT(EPOCH FROM finished_at - requested_at)", persisted=True),
            nullable=True,
        ),
        sa.Column("claimed_by", sa.Text(), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'partial', 'failed')",
            name=op.f("ck_publish_job_status"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
            name=op.f("fk_publish_job_tenant_id_tenant"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_publish_job")),
    )
    op.create_index(
        "ix_publish_job_queued",
        "publish_job",
        ["requested_at"],
        unique=False,
        postgresql_where=sa.text("status = 'queued'"),
    )
    op.create_index(op.f("ix_publish_job_tenant_id"), "publish_job", ["tenant_id"], unique=False)
    op.create_table(
        "telemetry_event",
        sa.Column("record_id", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "ingested_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("org_id", sa.Text(), nullable=False),
        sa.Column("workspace_id", sa.Text(), nullable=True),
        sa.Column("tenant_slug", sa.Text(), nullable=False),
        sa.Column("parent_tenant_slug", sa.Text(), nullable=True),
        sa.Column("skill_id", sa.Text(), nullable=True),
        sa.Column("skill_name", sa.Text(), nullable=True),
        sa.Column("remote_skill_id", sa.Text(), nullable=True),
        sa.Column("skill_version", sa.Text(), nullable=True),
        sa.Column("actor_user_id", sa.Text(), nullable=True),
        sa.Column("actor_email", sa.Text(), nullable=True),
        sa.Column("invocation_id", sa.Text(), nullable=True),
        sa.Column("model", sa.Text(), nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=True),
        sa.Column("output_tokens", sa.Integer(), nullable=True),
        sa.Column("cost_usd", sa.Numeric(precision=14, scale=6), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("error_type", sa.Text(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("footer_md", sa.Text(), nullable=True),
        sa.Column("raw", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.CheckConstraint(
            "status IN ('succeeded', 'failed')", name=op.f("ck_telemetry_event_status")
        ),
        sa.ForeignKeyConstraint(
            ["event_id", "occurred_at"],
            ["telemetry_event_id.event_id", "telemetry_event_id.occurred_at"],
            name="fk_telemetry_event_event_id",
        ),
        sa.PrimaryKeyConstraint("event_id", "occurred_at", name=op.f("pk_telemetry_event")),
        postgresql_partition_by="RANGE (occurred_at)",
    )
    op.create_index("ix_telemetry_event_record_id", "telemetry_event", ["record_id"], unique=False)
    op.create_index(
        "ix_telemetry_event_skill_time",
        "telemetry_event",
        ["skill_id", "occurred_at"],
        unique=False,
    )
    op.create_index(
        "ix_telemetry_event_tenant_time",
        "telemetry_event",
        ["tenant_slug", "occurred_at"],
        unique=False,
    )
    op.create_table(
        "publication",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("tenant_id", sa.BigInteger(), nullable=False),
        sa.Column("skill_id", sa.Text(), nullable=False),
        sa.Column("published_name", sa.Text(), nullable=False),
        sa.Column("remote_skill_id", sa.Text(), nullable=True),
        sa.Column("remote_version", sa.Text(), nullable=True),
        sa.Column("content_hash", sa.Text(), nullable=True),
        sa.Column(
            "acl",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text('\'{"workspace_ids": [], "rbac_group_ids": []}\'::jsonb'),
            nullable=False,
        ),
        sa.Column("status", sa.Text(), server_default=sa.text("'pending'"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_job_id", sa.BigInteger(), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'published', 'failed', 'unpublished')",
            name=op.f("ck_publication_status"),
        ),
        sa.ForeignKeyConstraint(
            ["last_job_id"],
            ["publish_job.id"],
            name=op.f("fk_publication_last_job_id_publish_job"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["skill_id"],
            ["catalog_skill.skill_id"],
            name=op.f("fk_publication_skill_id_catalog_skill"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
            name=op.f("fk_publication_tenant_id_tenant"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_publication")),
        sa.UniqueConstraint(
            "tenant_id", "skill_id", name=op.f("uq_publication_tenant_id_skill_id")
        ),
    )
    op.create_index(op.f("ix_publication_skill_id"), "publication", ["skill_id"], unique=False)
    op.create_table(
        "skill_grant",
        sa.Column("archetype_id", sa.BigInteger(), nullable=False),
        sa.Column("skill_id", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["archetype_id"],
            ["archetype.id"],
            name=op.f("fk_skill_grant_archetype_id_archetype"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["skill_id"],
            ["catalog_skill.skill_id"],
            name=op.f("fk_skill_grant_skill_id_catalog_skill"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("archetype_id", "skill_id", name=op.f("pk_skill_grant")),
    )
    op.create_index(op.f("ix_skill_grant_skill_id"), "skill_grant", ["skill_id"], unique=False)
    op.create_table(
        "workspace_mapping",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("org_id", sa.Text(), nullable=False),
        sa.Column("workspace_id", sa.Text(), nullable=False),
        sa.Column("workspace_name", sa.Text(), nullable=True),
        sa.Column("tenant_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["org_connection.org_id"],
            name=op.f("fk_workspace_mapping_org_id_org_connection"),
            onupdate="CASCADE",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
            name=op.f("fk_workspace_mapping_tenant_id_tenant"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workspace_mapping")),
        sa.UniqueConstraint(
            "org_id", "workspace_id", name=op.f("uq_workspace_mapping_org_id_workspace_id")
        ),
    )
    op.create_index(
        op.f("ix_workspace_mapping_tenant_id"), "workspace_mapping", ["tenant_id"], unique=False
    )
    op.execute(PUBLISH_JOB_NOTIFY)
    op.execute(TELEMETRY_PARTITIONS)
    op.execute(TELEMETRY_DAILY)
    op.execute(ANALYST_ROLE)


def downgrade() -> None:
    op.execute(REVOKE_ANALYST)
    op.execute("DROP VIEW telemetry_daily")
    op.execute("DROP FUNCTION telemetry_event_ensure_partition(timestamptz)")
    op.execute("DROP TRIGGER publish_job_notify ON publish_job")
    op.execute("DROP FUNCTION publish_job_notify()")
    op.drop_index(op.f("ix_workspace_mapping_tenant_id"), table_name="workspace_mapping")
    op.drop_table("workspace_mapping")
    op.drop_index(op.f("ix_skill_grant_skill_id"), table_name="skill_grant")
    op.drop_table("skill_grant")
    op.drop_index(op.f("ix_publication_skill_id"), table_name="publication")
    op.drop_table("publication")
    op.drop_index("ix_telemetry_event_tenant_time", table_name="telemetry_event")
    op.drop_index("ix_telemetry_event_skill_time", table_name="telemetry_event")
    op.drop_index("ix_telemetry_event_record_id", table_name="telemetry_event")
    op.drop_table("telemetry_event")
    op.drop_index(op.f("ix_publish_job_tenant_id"), table_name="publish_job")
    op.drop_index(
        "ix_publish_job_queued",
        table_name="publish_job",
        postgresql_where=sa.text("status = 'queued'"),
    )
    op.drop_table("publish_job")
    op.drop_table("org_connection")
    op.drop_table("archetype")
    op.drop_index(op.f("ix_tenant_parent_id"), table_name="tenant")
    op.drop_table("tenant")
    op.drop_index("ix_telemetry_quarantine_received", table_name="telemetry_quarantine")
    op.drop_table("telemetry_quarantine")
    op.drop_index(op.f("ix_telemetry_event_id_occurred_at"), table_name="telemetry_event_id")
    op.drop_table("telemetry_event_id")
    op.drop_table("catalog_skill")
    op.drop_table("audit_checkpoint")
