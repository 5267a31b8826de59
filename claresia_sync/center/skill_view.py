"""The Command Center's skill page as a JSON-ready value: one catalog skill's SKILL.md as the
users of a tenant get it, where it is live on which target, its history, its use across the
telemetry sources. Each part is read by what owns it: the desired state (publishing's own
transpile of the tenant's release), `publication` and `publication_history`, the report."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from claresia_sync.center.operations import NotFound, check_tenant, plain, publications
from claresia_sync.db.models import (
    Archetype,
    CatalogSkill,
    PublicationHistory,
    SkillGrant,
    Tenant,
)
from claresia_sync.errors import UserError, one_line
from claresia_sync.publish.desired import desired_state
from claresia_sync.telemetry.report import source_report

HISTORY_LIMIT = 200


def skill(engine: Engine, skill_id: str, *, tenant: str | None, since: dt.date) -> dict[str, Any]:
    """The skill page of `skill_id` (its SKILL.md as `tenant` gets it: by default the first
    tenant granted it), its use from UTC day `since` on."""
    if tenant is not None:
        check_tenant(engine, tenant)
    with Session(engine) as session:
        found = session.get(CatalogSkill, skill_id)
        if found is None:
            raise NotFound(f"no catalog skill {skill_id!r}; `claresia-sync catalog import` adds it")
        granted = list(
            session.scalars(
                select(Tenant.slug)
                .join(Archetype, Archetype.tenant_id == Tenant.id)
                .join(SkillGrant, SkillGrant.archetype_id == Archetype.id)
                .where(SkillGrant.skill_id == skill_id)
                .distinct()
                .order_by(Tenant.slug)
            )
        )
        shown = tenant or (granted[0] if granted else None)
        skill_md = _skill_md(session, skill_id, shown) if shown else None
        history = _history(session, skill_id, tenant)
    with engine.connect() as conn:
        use = source_report(conn, since=since, tenant=tenant, skill=skill_id)
    return {
        "skill_id": skill_id,
        "title": found.title,
        "catalog_version": found.version,
        "deprecated": found.deprecated,
        "granted_to": granted,
        "tenant": shown,
        "skill_md": skill_md,
        "publications": publications(engine, tenant=tenant, skill=skill_id),
        "history": history,
        "since": since.isoformat(),
        "use": [{k: plain(v) for k, v in asdict(f).items()} for f in use],
    }


def _skill_md(session: Session, skill_id: str, tenant: str) -> dict[str, Any]:
    """SKILL.md as publishing makes it for `tenant` (its release, its transpile), or why not."""
    out: dict[str, Any] = {
        "tenant": tenant,
        "name": None,
        "release": None,
        "content_hash": None,
        "text": None,
        "error": None,
    }
    try:
        orgs = desired_state(session, tenant)
    except UserError as exc:
        out["error"] = one_line(exc)
        return out
    wanted = next(
        (s for o in orgs for s in o.skills if s.tenant_slug == tenant and s.skill_id == skill_id),
        None,
    )
    if wanted is None:
        out["error"] = f"{skill_id!r} is not granted to {tenant!r} (or its release lacks it)"
        return out
    out.update(name=wanted.name, release=wanted.release, error=wanted.error)
    if wanted.skill is not None:
        path = f"{wanted.skill.name}/SKILL.md"
        out["content_hash"] = wanted.skill.content_hash
        out["text"] = next((f.content for f in wanted.skill.files if f.path == path), None)
    return out


def _history(session: Session, skill_id: str, tenant: str | None) -> list[dict[str, Any]]:
    query = select(PublicationHistory).where(PublicationHistory.skill_id == skill_id)
    if tenant is not None:
        query = query.where(PublicationHistory.tenant_slug == tenant)
    rows = session.scalars(
        query.order_by(PublicationHistory.at.desc(), PublicationHistory.id.desc()).limit(
            HISTORY_LIMIT
        )
    )
    return [
        {
            "at": plain(h.at),
            "tenant": h.tenant_slug,
            "target": h.target,
            "action": h.action,
            "status": h.status,
            "content_hash": h.content_hash,
            "version": h.remote_version,
            "release": h.release,
            "job_id": h.job_id,
        }
        for h in rows
    ]
