"""The kill switch (docs/releases.md, "Switch a skill off"): a skill disabled for one tenant (and
its sub-tenants) or for every tenant, in `skill_disabled`, until it is enabled again.

Desired state reads it (`disabled_pairs`): a disabled skill is not published to anyone, by any
job, drift check or rollout, for as long as it is disabled. `disable` records it and queues the
job that takes it away at `jobs.PRIORITY_KILL_SWITCH`: claimed before anything queued, and a
running job on the same tenants yields to it (publish/jobs.py); `enable` queues a normal publish.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from claresia_sync.db.models import CatalogSkill, SkillDisabled, Tenant
from claresia_sync.errors import UserError
from claresia_sync.publish import jobs
from claresia_sync.tenancy.lookup import require_tenant

MAX_REASON = 1000


class UnknownSkill(UserError):
    """A skill id that is not in the catalog."""


class NotDisabled(UserError):
    """`enable` of a skill that is not disabled in that scope."""


@dataclass(frozen=True)
class Disabled:
    """One skill disabled, as `skill list-disabled` and the console show it."""

    skill_id: str
    tenant: str | None
    """The tenant (with its sub-tenants) it is disabled for; None: every tenant."""
    reason: str
    disabled_by: str
    disabled_at: dt.datetime
    job_id: int | None

    def as_json(self) -> dict[str, Any]:
        return {
            "skill_id": self.skill_id,
            "tenant": self.tenant,
            "reason": self.reason,
            "disabled_by": self.disabled_by,
            "disabled_at": self.disabled_at.astimezone(dt.UTC).isoformat(),
            "job_id": self.job_id,
        }


@dataclass(frozen=True)
class Switched:
    """What `disable` or `enable` did: the job it queued, and whether the state changed."""

    job_id: int
    changed: bool
    """False: it already was so (disable: the job is queued again all the same)."""


def _require_skill(session: Session, skill_id: str) -> None:
    if session.get(CatalogSkill, skill_id) is None:
        raise UnknownSkill(
            f"unknown skill {skill_id!r}: not in the catalog (`claresia-sync catalog list`)"
        )


def _in_force(session: Session, skill_id: str) -> Any:
    return select(SkillDisabled).where(
        SkillDisabled.skill_id == skill_id, SkillDisabled.enabled_at.is_(None)
    )


def disable(
    session: Session,
    skill_id: str,
    tenant_slug: str | None,
    *,
    reason: str,
    by: str,
    claimed_by: str | None = None,
) -> Switched:
    """Disable `skill_id` for `tenant_slug` (None: every tenant) and queue the kill-switch job
    of that scope (in the caller's transaction; with `claimed_by`, born claimed by that worker,
    as `jobs.enqueue`). Disabling what is disabled keeps the first reason and queues the job
    again (an earlier one may have failed)."""
    reason = reason.strip()
    if not reason:
        raise UserError("--reason is required: say why the skill is taken away (it is audited)")
    if any(ord(c) < 32 or ord(c) == 127 for c in reason):
        raise UserError("--reason must be one line of text, without control characters")
    if len(reason) > MAX_REASON:
        raise UserError(f"--reason is {len(reason)} characters long; at most {MAX_REASON}")
    _require_skill(session, skill_id)
    tenant_id = None if tenant_slug is None else require_tenant(session, tenant_slug).id
    job_id = jobs.enqueue(
        session,
        tenant_slug,
        priority=jobs.PRIORITY_KILL_SWITCH,
        claimed_by=claimed_by,
        requested_by=f"kill-switch:{by}",
    )
    scope = (
        SkillDisabled.tenant_id.is_(None)
        if tenant_id is None
        else (SkillDisabled.tenant_id == tenant_id)
    )
    held = session.scalar(_in_force(session, skill_id).where(scope).with_for_update())
    if held is not None:
        return Switched(job_id, changed=False)
    # Two disables of one scope at once both find none held: the in-force unique index
    # (migration 0021) lets the first insert and the second wait for it and insert nothing.
    inserted = session.scalar(
        pg_insert(SkillDisabled)
        .values(
            skill_id=skill_id, tenant_id=tenant_id, reason=reason, disabled_by=by, job_id=job_id
        )
        .on_conflict_do_nothing(
            index_elements=[SkillDisabled.skill_id, func.coalesce(SkillDisabled.tenant_id, 0)],
            index_where=SkillDisabled.enabled_at.is_(None),
        )
        .returning(SkillDisabled.id)
    )
    return Switched(job_id, changed=inserted is not None)


def enable(
    session: Session,
    skill_id: str,
    tenant_slug: str | None,
    *,
    by: str,
    claimed_by: str | None = None,
) -> Switched:
    """Enable `skill_id` again for `tenant_slug` (None: everywhere it is disabled, every scope)
    and queue a normal publish of that scope, which gives it back."""
    _require_skill(session, skill_id)
    rows = list(session.scalars(_in_force(session, skill_id).with_for_update()))
    if tenant_slug is not None:
        tenant = require_tenant(session, tenant_slug)
        if any(r.tenant_id is None for r in rows):
            raise NotDisabled(
                f"skill {skill_id!r} is disabled for every tenant: `claresia-sync skill enable "
                f"{skill_id}` (without --tenant) enables it everywhere"
            )
        rows = [r for r in rows if r.tenant_id == tenant.id]
    if not rows:
        where = f" for tenant {tenant_slug!r}" if tenant_slug else ""
        raise NotDisabled(
            f"skill {skill_id!r} is not disabled{where} (`claresia-sync skill list-disabled`)"
        )
    for row in rows:
        row.enabled_at = func.now()
        row.enabled_by = by
    job_id = jobs.enqueue(
        session, tenant_slug, claimed_by=claimed_by, requested_by=f"kill-switch:{by}"
    )
    return Switched(job_id, changed=True)


def list_disabled(session: Session) -> list[Disabled]:
    """Every skill disabled now, by skill then tenant (every tenant first)."""
    rows = session.execute(
        select(SkillDisabled, Tenant.slug)
        .outerjoin(Tenant, Tenant.id == SkillDisabled.tenant_id)
        .where(SkillDisabled.enabled_at.is_(None))
        .order_by(SkillDisabled.skill_id, Tenant.slug.nulls_first())
    ).all()
    return [
        Disabled(r.skill_id, slug, r.reason, r.disabled_by, r.disabled_at, r.job_id)
        for r, slug in rows
    ]


def disabled_pairs(session: Session, tenants: dict[int, Tenant]) -> set[tuple[int, str]]:
    """(tenant id, skill id) of every skill disabled for a tenant of `tenants`: for it, for its
    parent, or for every tenant."""
    rows = session.execute(
        select(SkillDisabled.tenant_id, SkillDisabled.skill_id).where(
            SkillDisabled.enabled_at.is_(None)
        )
    ).all()
    if not rows:
        return set()
    everywhere = {skill for tenant_id, skill in rows if tenant_id is None}
    by_tenant: dict[int, set[str]] = {}
    for tenant_id, skill in rows:
        if tenant_id is not None:
            by_tenant.setdefault(tenant_id, set()).add(skill)
    out = set()
    for t in tenants.values():
        off = everywhere | by_tenant.get(t.id, set())
        if t.parent_id is not None:
            off |= by_tenant.get(t.parent_id, set())
        out |= {(t.id, skill) for skill in off}
    return out


def disabled_count(session: Session) -> int:
    """How many (skill, scope) are disabled now (the Prometheus gauge)."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(SkillDisabled)
            .where(SkillDisabled.enabled_at.is_(None))
        )
        or 0
    )
