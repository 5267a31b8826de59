"""A target kind is the code's (issue 21): `tenant_target.kind` is checked for the form of a
kind's name, not against a list of the kinds.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07

The kinds are `publish.targets.KINDS`: a kind is one module and one line there. A CHECK listing
them (`kind IN ('claude-enterprise', 'claude-api')`) made every new kind a migration too, and a
table of kinds would need a row per kind kept in step with the code. What the database can still
hold to is the form of a name (lowercase words joined by `-`, as `publication.target` and the
tenants file write it); which names exist is checked where a row is written (`tenants apply`
accepts only the sections of registered kinds) and read (`tenancy.lookup` skips, with a warning,
a row of a kind this version does not know, and publishes the others).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME_CHECK = "kind ~ '^[a-z][a-z0-9]*(-[a-z0-9]+)*$'"


def upgrade() -> None:
    op.drop_constraint(op.f("ck_tenant_target_kind"), "tenant_target", type_="check")
    op.create_check_constraint(op.f("ck_tenant_target_kind_is_a_name"), "tenant_target", NAME_CHECK)


def downgrade() -> None:
    op.drop_constraint(op.f("ck_tenant_target_kind_is_a_name"), "tenant_target", type_="check")
    op.create_check_constraint(
        op.f("ck_tenant_target_kind"),
        "tenant_target",
        "kind IN ('claude-enterprise', 'claude-api')",
    )
