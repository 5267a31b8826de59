"""Rollouts of a release in waves, and telemetry attributed to the release live when it happened
(issue 22).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07

- `rollout` (one per `rollout start`: the release, the plan, its state, why it halted),
  `rollout_wave` (each wave's soak, guardrails, progress and latest readings) and
  `rollout_tenant` (each tenant's wave, the release it was on before, its publish jobs).
- `telemetry_by_release`: each telemetry event with the content hash and release of the skill
  live for its tenant when it happened (from `publication_history`), for the guardrails and
  analysts (granted to `claresia_analyst`); an index on `publication_history` for its lookup.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The history row live at the event: the latest change of (tenant, skill) at or before it that is
# not a failure (a failed publish leaves what was live), preferring the target the event comes
# from (Claude Code activations: claude-enterprise; the audit log: org-skills).
BY_RELEASE = """
CREATE VIEW telemetry_by_release AS
SELECT e.event_id, e.event_type, e.status, e.occurred_at,
       (e.occurred_at AT TIME ZONE 'UTC')::date AS day,
       e.org_id, e.tenant_slug, e.parent_tenant_slug,
       coalesce(e.parent_tenant_slug, e.tenant_slug) AS root_tenant_slug,
       e.skill_id, e.skill_name,
       h.target, h.content_hash, h.release, h.at AS live_since
  FROM telemetry_event e
  LEFT JOIN LATERAL (
        SELECT ph.target, ph.content_hash, ph.release, ph.at
          FROM publication_history ph
         WHERE ph.tenant_slug = e.tenant_slug AND ph.skill_id = e.skill_id
           AND ph.at <= e.occurred_at AND ph.action <> 'failed'
         ORDER BY (ph.target = CASE WHEN e.event_type LIKE 'claude_code.%'
                                    THEN 'claude-enterprise' ELSE 'org-skills' END) DESC,
                  ph.at DESC, ph.id DESC
         LIMIT 1) h ON true;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'claresia_analyst') THEN
        GRANT SELECT ON telemetry_by_release TO claresia_analyst;
    END IF;
END $$;
"""


def _at(name: str, nullable: bool = True) -> sa.Column[sa.DateTime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "rollout",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("release", sa.Integer(), nullable=False),
        sa.Column("status", sa.Text(), server_default=sa.text("'running'"), nullable=False),
        sa.Column("plan", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("plan_source", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("wave", sa.Integer(), server_default=sa.text("1"), nullable=False),
        _at("halted_at"),
        sa.Column("halt_reason", sa.Text(), nullable=True),
        sa.Column("halt_readings", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        _at("finished_at"),
        sa.Column("rolled_back_by", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'halted', 'completed', 'rolled_back')",
            name=op.f("ck_rollout_status"),
        ),
        sa.ForeignKeyConstraint(
            ["release"],
            ["catalog_release.number"],
            name=op.f("fk_rollout_release_catalog_release"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollout")),
    )
    op.create_table(
        "rollout_wave",
        sa.Column("rollout_id", sa.BigInteger(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("soak_s", sa.Double(), nullable=False),
        sa.Column("guardrails", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.Text(), server_default=sa.text("'pending'"), nullable=False),
        _at("started_at"),
        _at("live_at"),
        _at("passed_at"),
        sa.Column("passed_by", sa.Text(), nullable=True),
        sa.Column("readings", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'publishing', 'soaking', 'passed')",
            name=op.f("ck_rollout_wave_status"),
        ),
        sa.ForeignKeyConstraint(
            ["rollout_id"],
            ["rollout.id"],
            name=op.f("fk_rollout_wave_rollout_id_rollout"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("rollout_id", "number", name=op.f("pk_rollout_wave")),
    )
    op.create_table(
        "rollout_tenant",
        sa.Column("rollout_id", sa.BigInteger(), nullable=False),
        sa.Column("tenant_id", sa.BigInteger(), nullable=False),
        sa.Column("tenant_slug", sa.Text(), nullable=False),
        sa.Column("wave", sa.Integer(), nullable=False),
        sa.Column("previous_pin", sa.Integer(), nullable=True),
        sa.Column("previous_release", sa.Integer(), nullable=False),
        _at("moved_at"),
        sa.Column("job_id", sa.BigInteger(), nullable=True),
        _at("rolled_back_at"),
        sa.Column("rollback_job_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["rollout_id"],
            ["rollout.id"],
            name=op.f("fk_rollout_tenant_rollout_id_rollout"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
            name=op.f("fk_rollout_tenant_tenant_id_tenant"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("rollout_id", "tenant_id", name=op.f("pk_rollout_tenant")),
    )
    op.create_index(
        "ix_publication_history_tenant_skill_at",
        "publication_history",
        ["tenant_slug", "skill_id", "at"],
    )
    op.execute(BY_RELEASE)


def downgrade() -> None:
    op.execute("DROP VIEW telemetry_by_release")
    op.drop_index("ix_publication_history_tenant_skill_at", table_name="publication_history")
    op.drop_table("rollout_tenant")
    op.drop_table("rollout_wave")
    op.drop_table("rollout")
