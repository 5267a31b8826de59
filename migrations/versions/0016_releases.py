"""Catalog releases, tenants on a release, and the history of every publication change (issue 22).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07

- `catalog_ir`: every Skill IR imported, once per (skill, IR hash); `catalog_release` (numbered,
  who, when, a note, which one is current) and `catalog_release_skill` (its skills' IR).
  Releases are immutable: UPDATE and DELETE are refused, but for `catalog_release.is_current`.
- `tenant.release`: the release a tenant is on (NULL: the current one).
- Release 1 is today's `catalog_skill` rows, made current: publishing renders what it did.
- `publication_history`: each change of a `publication` row, append-only, readable by
  `claresia_analyst` (docs/analytics.md: what a tenant had at an instant).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY = """
CREATE FUNCTION claresia_release_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND TG_TABLE_NAME = 'catalog_release' THEN
        -- nested: NEW.number exists only in catalog_release's rows
        IF (NEW.number, NEW.created_at, NEW.created_by, NEW.note)
           IS NOT DISTINCT FROM (OLD.number, OLD.created_at, OLD.created_by, OLD.note) THEN
            RETURN NEW;  -- only which release is current may change
        END IF;
    END IF;
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'releases and the publication history are never rewritten';
END $$;
CREATE TRIGGER catalog_ir_no_change BEFORE UPDATE OR DELETE ON catalog_ir
    FOR EACH ROW EXECUTE FUNCTION claresia_release_immutable();
CREATE TRIGGER catalog_release_no_change BEFORE UPDATE OR DELETE ON catalog_release
    FOR EACH ROW EXECUTE FUNCTION claresia_release_immutable();
CREATE TRIGGER catalog_release_skill_no_change BEFORE UPDATE OR DELETE ON catalog_release_skill
    FOR EACH ROW EXECUTE FUNCTION claresia_release_immutable();
CREATE TRIGGER publication_history_no_change BEFORE UPDATE OR DELETE ON publication_history
    FOR EACH ROW EXECUTE FUNCTION claresia_release_immutable();
"""

RELEASE_ONE = """
INSERT INTO catalog_ir (skill_id, ir_hash, ir)
    SELECT skill_id, ir_hash, ir FROM catalog_skill;
INSERT INTO catalog_release (number, created_by, note, is_current)
    SELECT 1, 'migration 0016', 'the catalog as it stood when releases began', true
     WHERE EXISTS (SELECT 1 FROM catalog_skill);
INSERT INTO catalog_release_skill (release, skill_id, ir_hash, deprecated)
    SELECT 1, skill_id, ir_hash, deprecated FROM catalog_skill;
"""

GRANT = """
DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'claresia_analyst') THEN
        GRANT SELECT ON publication_history TO claresia_analyst;
    END IF;
END $$;
"""


def _now() -> sa.Column[sa.DateTime]:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "catalog_ir",
        sa.Column("skill_id", sa.Text(), nullable=False),
        sa.Column("ir_hash", sa.Text(), nullable=False),
        sa.Column("ir", sa.JSON(), nullable=False),
        _now(),
        sa.PrimaryKeyConstraint("skill_id", "ir_hash", name=op.f("pk_catalog_ir")),
    )
    op.create_table(
        "catalog_release",
        sa.Column("number", sa.Integer(), autoincrement=False, nullable=False),
        _now(),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("is_current", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.CheckConstraint("number > 0", name=op.f("ck_catalog_release_number")),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_catalog_release")),
    )
    op.create_index(
        "uq_catalog_release_current",
        "catalog_release",
        ["is_current"],
        unique=True,
        postgresql_where=sa.text("is_current"),
    )
    op.create_table(
        "catalog_release_skill",
        sa.Column("release", sa.Integer(), nullable=False),
        sa.Column("skill_id", sa.Text(), nullable=False),
        sa.Column("ir_hash", sa.Text(), nullable=False),
        sa.Column("deprecated", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.ForeignKeyConstraint(
            ["release"],
            ["catalog_release.number"],
            name=op.f("fk_catalog_release_skill_release_catalog_release"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["skill_id", "ir_hash"],
            ["catalog_ir.skill_id", "catalog_ir.ir_hash"],
            name="fk_catalog_release_skill_ir",
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("release", "skill_id", name=op.f("pk_catalog_release_skill")),
    )
    op.add_column("tenant", sa.Column("release", sa.Integer(), nullable=True))
    op.create_foreign_key(
        op.f("fk_tenant_release_catalog_release"),
        "tenant",
        "catalog_release",
        ["release"],
        ["number"],
        ondelete="RESTRICT",
    )
    op.create_table(
        "publication_history",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column(
            "at",
            sa.DateTime(timezone=True),
            server_default=sa.text("clock_timestamp()"),
            nullable=False,
        ),
        sa.Column("tenant_id", sa.BigInteger(), nullable=False),
        sa.Column("tenant_slug", sa.Text(), nullable=False),
        sa.Column("skill_id", sa.Text(), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("published_name", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.Text(), nullable=True),
        sa.Column("remote_version", sa.Text(), nullable=True),
        sa.Column("release", sa.Integer(), nullable=True),
        sa.Column("job_id", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "action IN ('published', 'updated', 'access', 'failed', 'unpublished')",
            name=op.f("ck_publication_history_action"),
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'published', 'failed', 'unpublished')",
            name=op.f("ck_publication_history_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_publication_history")),
    )
    op.create_index(
        "ix_publication_history_tenant_at", "publication_history", ["tenant_slug", "at"]
    )
    op.execute(APPEND_ONLY)
    op.execute(RELEASE_ONE)
    op.execute(GRANT)


def downgrade() -> None:
    op.drop_table("publication_history")
    op.drop_constraint(op.f("fk_tenant_release_catalog_release"), "tenant", type_="foreignkey")
    op.drop_column("tenant", "release")
    op.drop_table("catalog_release_skill")
    op.drop_table("catalog_release")
    op.drop_table("catalog_ir")  # their triggers go with them
    op.execute("DROP FUNCTION claresia_release_immutable()")
