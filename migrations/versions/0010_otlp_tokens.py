"""The bearer token of each root tenant's Claude Code OTLP export (issue 16), by reference.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "otlp_token",
        sa.Column("tenant_id", sa.BigInteger(), nullable=False),
        sa.Column("token_ref", sa.Text(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        # A pasted token instead of a reference must not reach the database.
        sa.CheckConstraint("token_ref ~ '^(env:|file:)'", name=op.f("ck_otlp_token_is_reference")),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
            name=op.f("fk_otlp_token_tenant_id_tenant"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_otlp_token")),
    )


def downgrade() -> None:
    op.drop_table("otlp_token")
