"""Claude Code managed settings of a root tenant's rbac groups (issue 16): the opt-in and what
claresia-sync wrote there (setting names, never values).

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "claude_code_settings",
        sa.Column("tenant_id", sa.BigInteger(), nullable=False),
        sa.Column("manage", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("endpoint", sa.Text(), nullable=True),
        sa.Column(
            "owned",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
            name=op.f("fk_claude_code_settings_tenant_id_tenant"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_claude_code_settings")),
    )


def downgrade() -> None:
    op.drop_table("claude_code_settings")
