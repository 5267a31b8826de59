"""Real Anthropic targets of a tenant (issue 15): claude-enterprise and claude-api.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30

- `tenant_target`: a root tenant's claude-enterprise or claude-api target (org, key references,
  base URL, the workspace keys of claude-api); org-skills stays `org_connection`.
- `zero_retention_attestation`: who attested zero data retention, and when (no API reports it).
- `archetype.installation_preference`: how claude-enterprise installs a plugin for its group.
- `workspace_mapping.org_id` loses its foreign key to `org_connection`: a tenant on claude-api
  alone maps workspaces without an org-skills connection.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tenant_target",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("tenant_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("org_id", sa.Text(), nullable=False),
        sa.Column("admin_key_ref", sa.Text(), nullable=True),
        sa.Column("base_url", sa.Text(), nullable=True),
        sa.Column(
            "workspace_key_refs",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "kind IN ('claude-enterprise', 'claude-api')", name=op.f("ck_tenant_target_kind")
        ),
        sa.CheckConstraint(
            "admin_key_ref IS NULL OR admin_key_ref ~ '^(env:|file:)'",
            name=op.f("ck_tenant_target_key_is_reference"),
        ),
        sa.CheckConstraint(
            "NOT jsonb_path_exists(workspace_key_refs, "
            """'$.* ? (!(@ like_regex "^(env:|file:)"))')""",
            name=op.f("ck_tenant_target_workspace_keys_are_references"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
            name=op.f("fk_tenant_target_tenant_id_tenant"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenant_target")),
        sa.UniqueConstraint("tenant_id", "kind", name=op.f("uq_tenant_target_tenant_id_kind")),
    )
    op.create_table(
        "zero_retention_attestation",
        sa.Column("tenant_id", sa.BigInteger(), nullable=False),
        sa.Column("attested_by", sa.Text(), nullable=False),
        sa.Column("attested_at", sa.Date(), nullable=False),
        sa.Column(
            "recorded_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
            name=op.f("fk_zero_retention_attestation_tenant_id_tenant"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_zero_retention_attestation")),
    )
    op.add_column(
        "archetype",
        sa.Column(
            "installation_preference",
            sa.Text(),
            server_default=sa.text("'auto_install'"),
            nullable=False,
        ),
    )
    op.create_check_constraint(
        op.f("ck_archetype_installation_preference"),
        "archetype",
        "installation_preference IN ('available', 'auto_install', 'required')",
    )
    op.drop_constraint(
        "fk_workspace_mapping_org_id_org_connection", "workspace_mapping", type_="foreignkey"
    )


def downgrade() -> None:
    op.execute(
        "DELETE FROM workspace_mapping m WHERE NOT EXISTS "
        "(SELECT 1 FROM org_connection c WHERE c.org_id = m.org_id)"
    )
    op.create_foreign_key(
        "fk_workspace_mapping_org_id_org_connection",
        "workspace_mapping",
        "org_connection",
        ["org_id"],
        ["org_id"],
        ondelete="CASCADE",
        onupdate="CASCADE",
    )
    op.drop_constraint(op.f("ck_archetype_installation_preference"), "archetype", type_="check")
    op.drop_column("archetype", "installation_preference")
    op.drop_table("zero_retention_attestation")
    op.drop_table("tenant_target")
