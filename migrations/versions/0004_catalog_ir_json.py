"""catalog_skill.ir as json, so the IR keeps its key order (docs/interfaces.md section 2).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30

jsonb stores object keys in its own order (shorter keys first), so an example input
`{"zeta": .., "a": ..}` came back from the database as `{"a": .., "zeta": ..}` and the publish path
rendered it in another order than `claresia-sync transpile` renders the file: another SKILL.md,
another content hash. json keeps the text as written.

Existing rows keep working as they are (jsonb's order, cast to json); the next `catalog import`
rewrites each of them in its file's order (the IR hash now includes key order, and an IR stored
in another order than its file's counts as changed), and the next publish brings the skills whose
output changed to it.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE catalog_skill ALTER COLUMN ir TYPE json USING ir::json")


def downgrade() -> None:
    op.execute("ALTER TABLE catalog_skill ALTER COLUMN ir TYPE jsonb USING ir::jsonb")
