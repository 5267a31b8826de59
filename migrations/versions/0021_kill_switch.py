"""The kill switch: skills switched off, and job priority (issue 22).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07

- `skill_disabled`: a skill taken away from one tenant (and its sub-tenants) or from every
  tenant (`tenant_id` NULL), with who, when and why; enabling it again stamps
  `enabled_at`/`enabled_by` and keeps the row. One row in force per skill and scope.
- `publish_job.priority`: higher is claimed first; a running job of a lower priority on the same
  tenants yields to it (publish/jobs.py). Every existing job is 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "publish_job",
        sa.Column("priority", sa.SmallInteger(), server_default=sa.text("0"), nullable=False),
    )
    op.create_table(
        "skill_disabled",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("skill_id", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("disabled_by", sa.Text(), nullable=False),
        sa.Column(
            "disabled_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("job_id", sa.BigInteger(), nullable=True),
        sa.Column("enabled_by", sa.Text(), nullable=True),
        sa.Column("enabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("length(btrim(reason)) > 0", name=op.f("ck_skill_disabled_reason")),
        sa.ForeignKeyConstraint(
            ["skill_id"],
            ["catalog_skill.skill_id"],
            name=op.f("fk_skill_disabled_skill_id_catalog_skill"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
            name=op.f("fk_skill_disabled_tenant_id_tenant"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_skill_disabled")),
    )
    op.create_index(op.f("ix_skill_disabled_tenant_id"), "skill_disabled", ["tenant_id"])
    op.create_index(
        "ux_skill_disabled_in_force",
        "skill_disabled",
        ["skill_id", sa.text("coalesce(tenant_id, 0)")],
        unique=True,
        postgresql_where=sa.text("enabled_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_table("skill_disabled")
    op.drop_column("publish_job", "priority")
