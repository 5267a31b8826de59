"""What a release change does to a tenant's SKILL.md (`release diff A B --tenant T`): each
changed skill's stored IR of both releases, read as publishing reads it and transpiled for the
tenant, as a unified diff."""

from __future__ import annotations

import difflib
from dataclasses import replace

from sqlalchemy.orm import Session

from claresia_sync.db.models import CatalogIR
from claresia_sync.publish.desired import _parse_catalog_ir, transpile_many
from claresia_sync.release_store import SkillChange, diff_releases
from claresia_sync.tenancy.lookup import require_tenant


def diff_for_tenant(session: Session, a: int, b: int, tenant_slug: str) -> list[SkillChange]:
    """`diff_releases(a, b)`, each changed skill with its SKILL.md diff as `tenant_slug` gets
    it."""
    tenant = require_tenant(session, tenant_slug).slug
    out = []
    for change in diff_releases(session, a, b):
        if change.change == "changed" and change.old_hash and change.new_hash:
            texts = [
                _skill_md(session, change.skill_id, h, tenant)
                for h in (change.old_hash, change.new_hash)
            ]
            text_diff = "".join(
                difflib.unified_diff(
                    texts[0].splitlines(keepends=True),
                    texts[1].splitlines(keepends=True),
                    fromfile=f"release {a}/{change.skill_id}/SKILL.md",
                    tofile=f"release {b}/{change.skill_id}/SKILL.md",
                )
            )
            change = replace(change, text_diff=text_diff)
        out.append(change)
    return out


def _skill_md(session: Session, skill_id: str, ir_hash: str, tenant: str) -> str:
    """SKILL.md of one stored IR as `tenant` gets it (or why it cannot be made)."""
    parsed = _parse_catalog_ir(session.get_one(CatalogIR, (skill_id, ir_hash)))
    if isinstance(parsed, str):
        return f"({parsed})\n"
    skill = transpile_many([((ir_hash, parsed), tenant)])[(ir_hash, tenant)]
    if isinstance(skill, str):
        return f"({skill})\n"
    return next((f.content for f in skill.files if f.path == f"{skill.name}/SKILL.md"), "")
