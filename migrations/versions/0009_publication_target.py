"""publication.target: one row per tenant, skill and target (issue 15).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30

A tenant may publish one skill to several targets (org-skills, claude-enterprise, claude-api per
workspace); existing rows are org-skills'.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "publication",
        sa.Column("target", sa.Text(), server_default=sa.text("'org-skills'"), nullable=False),
    )
    op.drop_constraint("uq_publication_tenant_id_skill_id", "publication", type_="unique")
    op.create_unique_constraint(
        op.f("uq_publication_tenant_id_skill_id_target"),
        "publication",
        ["tenant_id", "skill_id", "target"],
    )


def downgrade() -> None:
    op.execute("DELETE FROM publication WHERE target <> 'org-skills'")
    op.drop_constraint(
        op.f("uq_publication_tenant_id_skill_id_target"), "publication", type_="unique"
    )
    op.create_unique_constraint(
        "uq_publication_tenant_id_skill_id", "publication", ["tenant_id", "skill_id"]
    )
    op.drop_column("publication", "target")
