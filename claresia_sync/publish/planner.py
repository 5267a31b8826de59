"""The planner: desired state vs what is live -> one plan item per skill.

What is live comes from the `publication` table; with `check_remote` (`--force`, drift checks)
from the organisation's own list of `claresia-` skills, which also finds skills deleted or
altered behind the daemon's back and skills of removed tenants. Skills outside the `claresia-`
namespace are never listed, so never touched. Before anything, the organisation's
zero-retention setting is read: without it the whole organisation is refused (seeds/002).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from claresia_sync.api.client import OrgClient
from claresia_sync.api.errors import ZERO_RETENTION_HINT, APIError
from claresia_sync.api.models import Skill
from claresia_sync.db.models import Publication
from claresia_sync.naming import PREFIX
from claresia_sync.publish.desired import Acl, DesiredSkill, OrgDesired


class Op(StrEnum):
    CREATE = "create"
    UPDATE = "update"  # a new version (and the ACL if it differs too)
    ACL = "acl"
    DELETE = "delete"
    UNCHANGED = "unchanged"
    FAILED = "failed"  # cannot be planned (bad IR, name clash, refused organisation)


WRITE_OPS = frozenset({Op.CREATE, Op.UPDATE, Op.ACL, Op.DELETE})


@dataclass(frozen=True)
class LivePublication:
    """A `publication` row, detached from the session."""

    id: int
    tenant_id: int
    tenant_slug: str
    skill_id: str
    name: str
    remote_id: str | None
    remote_version: str | None
    content_hash: str | None
    acl: Acl
    status: str


@dataclass
class PlanItem:
    op: Op
    org_id: str
    tenant_slug: str
    name: str
    reason: str = ""
    tenant_id: int | None = None
    skill_id: str | None = None
    remote_id: str | None = None
    desired: DesiredSkill | None = None
    new_version: bool = False
    set_acl: bool = False
    publication_id: int | None = None
    # What is live now, as far as the plan knows (recorded as is if the item fails).
    live_version: str | None = None
    live_hash: str | None = None
    live_acl: Acl | None = None

    def __repr__(self) -> str:
        return f"PlanItem({self.op.value} {self.name} in {self.org_id}: {self.reason})"

    @property
    def key(self) -> tuple[int, str] | None:
        """The publication this item records into, if it has one."""
        if self.tenant_id is None or self.skill_id is None:
            return None
        return (self.tenant_id, self.skill_id)


@dataclass
class OrgPlan:
    org: OrgDesired
    items: list[PlanItem] = field(default_factory=list)
    refused: str | None = None
    """Why nothing may be done in this organisation (zero retention off, key, connection)."""

    def __repr__(self) -> str:
        return f"OrgPlan({self.org.org_id}, {len(self.items)} items, refused={self.refused!r})"


@dataclass
class Plan:
    orgs: list[OrgPlan]
    check_remote: bool

    def __repr__(self) -> str:
        return f"Plan({len(self.orgs)} organisations, {self.counts()})"

    def items(self) -> list[PlanItem]:
        return [i for o in self.orgs for i in o.items]

    def counts(self) -> dict[str, int]:
        out = {op.value: 0 for op in Op}
        for item in self.items():
            out[item.op.value] += 1
        return out

    @property
    def writes(self) -> int:
        return sum(1 for i in self.items() if i.op in WRITE_OPS)


def load_live(session: Session, orgs: Sequence[OrgDesired]) -> dict[str, list[LivePublication]]:
    """The publication rows of the tenants in scope, by organisation (one query)."""
    org_of = {org.tenants[s]: org.org_id for org in orgs for s in org.scope}
    ids = {org.tenants[s]: s for org in orgs for s in org.scope}
    out: dict[str, list[LivePublication]] = {org.org_id: [] for org in orgs}
    rows = session.scalars(select(Publication).where(Publication.tenant_id.in_(ids)))
    for live in _detached(rows, ids):
        out[org_of[live.tenant_id]].append(live)
    return out


def _detached(rows: Iterable[Publication], ids: dict[int, str]) -> list[LivePublication]:
    return [
        LivePublication(
            id=p.id,
            tenant_id=p.tenant_id,
            tenant_slug=ids[p.tenant_id],
            skill_id=p.skill_id,
            name=p.published_name,
            remote_id=p.remote_skill_id,
            remote_version=p.remote_version,
            content_hash=p.content_hash,
            acl=Acl.of(p.acl.get("workspace_ids", []), p.acl.get("rbac_group_ids", [])),
            status=p.status,
        )
        for p in rows
    ]


def zero_retention_refusal(org_id: str, name: str) -> str:
    return f"organisation {org_id} ({name}): zero-retention not enabled — {ZERO_RETENTION_HINT}"


async def check_organization(client: OrgClient, org: OrgDesired) -> str | None:
    """Why the organisation must not be published to, or None (the zero-retention gate)."""
    try:
        info = await client.get_organization()
    except APIError as exc:
        return f"organisation {org.org_id}: {exc} — {exc.hint}"
    if info.id != org.org_id:
        return (
            f"the admin key of tenant {org.root_slug!r} belongs to organisation {info.id}, not "
            f"{org.org_id}: fix `connection.org_id` or the key"
        )
    if not info.zero_data_retention:
        return zero_retention_refusal(org.org_id, info.name)
    return None


async def list_remote(client: OrgClient, org_id: str) -> list[Skill]:
    return [s async for s in client.list_skills(org_id, name_prefix=PREFIX, page_size=1000)]


def same_content(remote: Skill, desired: DesiredSkill) -> bool:
    # The server's own hash of the files it holds (CONTRACT.md section 2's rule). Our metadata
    # hash is not evidence: content edited behind our back can keep our metadata.
    return remote.content_hash == desired.content_hash


def plan_org(
    org: OrgDesired,
    live: Sequence[LivePublication],
    remote: Iterable[Skill] | None = None,
) -> OrgPlan:
    """Compare; `remote` (the org's `claresia-` skills) overrides what the table says."""
    plan = OrgPlan(org)
    pubs = {(p.tenant_id, p.skill_id): p for p in live}
    desired_keys = {(d.tenant_id, d.skill_id) for d in org.skills}
    remote_by_name = {s.name: s for s in remote} if remote is not None else None

    for d in org.skills:
        pub = pubs.get((d.tenant_id, d.skill_id))
        item = PlanItem(
            Op.UNCHANGED,
            org.org_id,
            d.tenant_slug,
            d.name,
            tenant_id=d.tenant_id,
            skill_id=d.skill_id,
            desired=d,
            publication_id=pub.id if pub else None,
        )
        if pub is not None and pub.remote_id is not None:
            item.remote_id = pub.remote_id
            item.live_version, item.live_hash, item.live_acl = (
                pub.remote_version,
                pub.content_hash,
                pub.acl,
            )
        plan.items.append(item)
        if d.error is not None:
            item.op, item.reason = Op.FAILED, d.error
            continue
        if remote_by_name is not None:
            r = remote_by_name.get(d.name)
            if r is None:
                item.op = Op.CREATE
                item.reason = "missing remotely" if pub and pub.remote_id else "new"
                item.remote_id, item.live_version, item.live_hash, item.live_acl = (None,) * 4
                continue
            item.remote_id = r.id
            item.live_version = r.latest_version
            item.live_hash = r.metadata.get("claresia.content_hash", r.content_hash)
            item.live_acl = Acl.of(r.access.workspace_ids, r.access.rbac_group_ids)
            item.new_version = not same_content(r, d)
            item.set_acl = item.live_acl != d.acl
            if pub is None or pub.remote_id != r.id:
                item.reason = "found remotely by name"
        else:
            if pub is None or pub.remote_id is None or pub.status == "unpublished":
                item.op, item.reason = Op.CREATE, "new"
                continue
            item.new_version = pub.content_hash != d.content_hash
            # After a failed run the recorded ACL may not be what is live: set it again.
            item.set_acl = pub.acl != d.acl or pub.status != "published"
        if item.new_version:
            item.op = Op.UPDATE
            item.reason = item.reason or "content changed"
        elif item.set_acl:
            item.op = Op.ACL
            item.reason = item.reason or "access changed"
        elif pub is None or pub.remote_id != item.remote_id or pub.status != "published":
            item.reason = item.reason or "record repaired"  # unchanged remotely; fix the row

    def why_gone(skill_id: str | None) -> str:
        if skill_id is not None and skill_id in org.deprecated:
            return "deprecated"
        return "no longer granted"

    handled_names = {d.name for d in org.skills}
    for p in live:
        if (p.tenant_id, p.skill_id) in desired_keys or p.status == "unpublished":
            continue
        handled_names.add(p.name)
        remote_id = p.remote_id
        if remote_by_name is not None:
            r = remote_by_name.get(p.name)
            remote_id = r.id if r else None
        item = PlanItem(
            Op.DELETE,
            org.org_id,
            p.tenant_slug,
            p.name,
            reason=why_gone(p.skill_id),
            tenant_id=p.tenant_id,
            skill_id=p.skill_id,
            remote_id=remote_id,
            publication_id=p.id,
            live_version=p.remote_version,
            live_hash=p.content_hash,
            live_acl=p.acl,
        )
        if remote_id is None:
            item.op, item.reason = Op.UNCHANGED, "already gone; record repaired"
        plan.items.append(item)

    if remote_by_name is not None:
        for name, r in sorted(remote_by_name.items()):
            if name in handled_names:
                continue
            owner = r.metadata.get("claresia.tenant")
            if owner in org.scope:
                reason = why_gone(r.metadata.get("claresia.skill_id"))
            elif owner and org.whole_org and owner not in set(org.tenants) | org.other_tenants:
                reason = "tenant removed"
            else:
                continue  # another tenant's, or not ours: never touched
            plan.items.append(
                PlanItem(
                    Op.DELETE,
                    org.org_id,
                    owner,
                    name,
                    reason=f"{reason} (found remotely)",
                    tenant_id=org.tenants.get(owner),
                    skill_id=None,
                    remote_id=r.id,
                )
            )
    return plan
