"""The planner: desired state vs what is live -> one plan item per skill.

What is live comes from the `publication` table; with `check_remote` (`--force`, drift checks)
from the target's own list of our skills (`PublishTarget.list_ours`), which also finds skills
deleted or altered behind the daemon's back and skills of removed tenants. Skills that are not
ours are never listed, so never touched. A skill whose access would be written is first
checked against what the target's credential may grant (pre-flight): one it cannot is planned
as failed, with the reason, before any write.

Pure: no database session beyond `load_live`, no API (the caller passes what the target said),
so every case is unit-tested (tests/unit/test_planner.py). One function per case:
`_against_remote`, `_against_record`, `_plan_gone`, `_plan_strays`; `changes_needed` is the
one decision of "new version and/or access change".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session

from claresia_sync.db.models import Publication
from claresia_sync.publish.desired import DesiredSkill, OrgDesired
from claresia_sync.publish.targets import ORG_SKILLS, Access, AccessCheck, LiveSkill


class Op(StrEnum):
    CREATE = "create"
    UPDATE = "update"  # a new version (and the access if it differs too)
    ACL = "acl"  # an access change only
    DELETE = "delete"
    UNCHANGED = "unchanged"
    FAILED = "failed"  # cannot be planned (bad IR, name clash, refused access, organisation)


WRITE_OPS = frozenset({Op.CREATE, Op.UPDATE, Op.ACL, Op.DELETE})


@dataclass(frozen=True)
class Changes:
    """What a live skill needs to become the desired one."""

    new_version: bool = False
    set_access: bool = False


def changes_needed(
    live: LiveSkill, desired: DesiredSkill, *, access_settled: bool = True
) -> Changes:
    """The one decision "new version and/or access change" (planner and applier both ask it).

    Content: the hash the target proves (or the recorded one) against the transpiled skill's.
    Access: the live access against the desired one, in the target's terms; with
    `access_settled=False` (an earlier run failed: what is live is not known) it is set again.
    """
    return _CHANGES[
        (
            live.content_hash != desired.content_hash,
            not access_settled or live.access != desired.access,
        )
    ]


# The four answers, made once: a run of 10,000 skills would make 10,000 equal values.
_CHANGES = {
    (v, a): Changes(new_version=v, set_access=a) for v in (False, True) for a in (False, True)
}


@dataclass(frozen=True)
class LivePublication:
    """A `publication` row, detached from the session; `live` is None when it has no remote."""

    tenant_id: int
    tenant_slug: str
    skill_id: str
    name: str
    status: str
    live: LiveSkill | None

    @property
    def key(self) -> tuple[int, str]:
        return (self.tenant_id, self.skill_id)

    @property
    def remote_id(self) -> str | None:
        return self.live.remote_id if self.live else None


@dataclass
class PlanItem:
    op: Op
    org_id: str
    tenant_slug: str
    name: str
    reason: str = ""
    tenant_id: int | None = None
    skill_id: str | None = None
    desired: DesiredSkill | None = None
    target: str = ORG_SKILLS.name
    """`publication.target` of the item (`TenantConnection.target_key`)."""
    twin_of: str | None = None
    """For the delete of a twin: the remote id of the copy that stays (or goes by its own
    item); such an item records no `publication` row."""
    changes: Changes = field(default_factory=Changes)
    live: LiveSkill | None = None
    """What is live now, as far as the plan knows (recorded as is if the item fails)."""

    def __repr__(self) -> str:
        return f"PlanItem({self.op.value} {self.name} in {self.org_id}: {self.reason})"

    @property
    def remote_id(self) -> str | None:
        return self.live.remote_id if self.live else None

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
    """The publication rows of the tenants in scope, by organisation target (`OrgDesired.key`,
    one query). Plain rows, not ORM objects, and each distinct access decoded once (a run of
    10,000 rows has one per tenant): this is most of a no-op run's database time."""
    org_of = {
        (org.tenants[s], org.connection.target_key): (org, s) for org in orgs for s in org.scope
    }
    out: dict[str, list[LivePublication]] = {org.key: [] for org in orgs}
    tenant_ids = {tenant_id for tenant_id, _ in org_of}
    accesses: dict[tuple[str, str], Access] = {}
    rows = session.execute(
        select(
            Publication.tenant_id,
            Publication.target,
            Publication.skill_id,
            Publication.published_name,
            Publication.status,
            Publication.remote_skill_id,
            Publication.remote_version,
            Publication.content_hash,
            cast(Publication.acl, Text),  # jsonb's text is canonical: equal values, equal text
        ).where(Publication.tenant_id.in_(tenant_ids))
    )
    for tenant_id, target, skill_id, name, status, remote_id, version, content_hash, acl in rows:
        found = org_of.get((tenant_id, target))
        if found is None:  # a row of a target the tenant no longer has stays as it is
            continue
        org, slug = found
        live = None
        if remote_id is not None:
            access = accesses.get((org.kind.name, acl))
            if access is None:
                access = accesses[(org.kind.name, acl)] = org.kind.access_from_json(json.loads(acl))
            live = LiveSkill(
                remote_id=remote_id,
                version=version,
                content_hash=content_hash,
                access=access,
                name=name,
            )
        out[org.key].append(LivePublication(tenant_id, slug, skill_id, name, status, live))
    return out


Remote = Mapping[str, LiveSkill]
"""Our skills live on the target, by published name."""


def plan_org(
    org: OrgDesired,
    live: Sequence[LivePublication],
    remote: Iterable[LiveSkill] | None = None,
    check: AccessCheck | None = None,
) -> OrgPlan:
    """Compare. `remote` (the target's own list of our skills, with `--force` and drift checks)
    overrides what the `publication` rows say; `check` is the pre-flight of desired access."""
    pubs = {p.key: p for p in live}
    copies = None if remote is None else _copies(remote, live)
    by_name = None if copies is None else {name: found[0] for name, found in copies.items()}
    plan = OrgPlan(org)
    plan.items = [_plan_desired(org, d, pubs.get(d.key), by_name, check) for d in org.skills]
    wanted = {d.key for d in org.skills}
    gone = [p for p in live if p.key not in wanted and p.status != "unpublished"]
    plan.items += [_plan_gone(org, p, by_name) for p in gone]
    if by_name is not None and copies is not None:
        handled = {d.name for d in org.skills} | {p.name for p in gone}
        strays = _plan_strays(org, by_name, handled)
        plan.items += strays
        plan.items += _plan_twins(org, copies, handled | {i.name for i in strays})
    for item in plan.items:
        item.target = org.connection.target_key
    return plan


def _plan_desired(
    org: OrgDesired,
    d: DesiredSkill,
    pub: LivePublication | None,
    remote: Remote | None,
    check: AccessCheck | None,
) -> PlanItem:
    item = PlanItem(
        Op.UNCHANGED,
        org.org_id,
        d.tenant_slug,
        d.name,
        tenant_id=d.tenant_id,
        skill_id=d.skill_id,
        desired=d,
        live=pub.live if pub else None,
    )
    if d.disabled:
        return _plan_disabled(item, d, pub, remote)
    if d.error is not None:
        return _set(item, Op.FAILED, d.error)
    if remote is not None:
        _against_remote(item, d, pub, remote.get(d.name))
    else:
        _against_record(item, d, pub)
    refused = check(d.access) if check is not None and _writes_access(item) else None
    return _set(item, Op.FAILED, refused) if refused else item


def only_disabled(plan: OrgPlan) -> OrgPlan:
    """The plan cut to the items of skills the kill switch disabled (`OrgDesired.disabled`):
    what the kill-switch job does, and nothing else (`ClaimedJob.kill_only`)."""

    def skill_of(item: PlanItem) -> str | None:
        return item.skill_id or (item.live.owner_skill if item.live is not None else None)

    plan.items = [i for i in plan.items if (i.tenant_slug, skill_of(i)) in plan.org.disabled]
    return plan


def _writes_access(item: PlanItem) -> bool:
    return item.op == Op.CREATE or item.changes.set_access


def needs_access_check(plan: OrgPlan) -> bool:
    """Whether the pre-flight can change `plan`: only items that write access are checked, so
    a plan without them (a no-op) is the same with or without the target's `AccessCheck`."""
    return any(_writes_access(item) for item in plan.items)


def _plan_disabled(
    item: PlanItem, d: DesiredSkill, pub: LivePublication | None, remote: Remote | None
) -> PlanItem:
    """A skill the kill switch keeps (claude-enterprise): its access is taken away and nothing
    else. Its content is not written, neither created nor given a new version, so a release
    made while it is off reaches no organisation until `skill enable` (then it is compared as
    any skill). Gone, it stays gone (the row says so)."""
    recorded = pub.live if pub is not None and pub.status != "unpublished" else None
    found = recorded if remote is None else remote.get(d.name)
    live = None if found is None else _proven(found, pub)
    item.live = live
    if live is None:
        item.desired = None  # nothing to write; a row that says otherwise is repaired
        stale = pub is not None and pub.status != "unpublished"
        return _set(item, Op.UNCHANGED, "already gone; record repaired" if stale else "")
    settled = remote is not None or (pub is not None and pub.status == "published")
    item.changes = Changes(set_access=not settled or live.access != d.access)
    if item.changes.set_access:
        return _set(item, Op.ACL, "disabled (kill switch)")
    if pub is None or pub.remote_id != live.remote_id or pub.status != "published":
        item.reason = "record repaired"
    return item


def _against_remote(
    item: PlanItem, d: DesiredSkill, pub: LivePublication | None, r: LiveSkill | None
) -> None:
    """With the target's list: it is the truth, the row is only compared to note repairs."""
    if r is None:
        item.live = None
        _set(item, Op.CREATE, "missing remotely" if pub and pub.live else "new")
        return
    r = _proven(r, pub)
    item.live = r
    found = "" if pub is not None and pub.remote_id == r.remote_id else "found remotely by name"
    _decide(item, changes_needed(r, d), pub, found)


def _proven(r: LiveSkill, pub: LivePublication | None) -> LiveSkill:
    """A live skill, with the row's hash where the target cannot prove one."""
    if r.content_hash is not None or pub is None or pub.live is None:
        return r
    if pub.remote_id != r.remote_id:
        return r
    return replace(r, content_hash=pub.live.content_hash)  # not provable there: the row's


def _against_record(item: PlanItem, d: DesiredSkill, pub: LivePublication | None) -> None:
    """Without it: the `publication` row is what is live (after a failed run, the access is
    set again, since the row may not be what is live)."""
    if pub is None or pub.live is None or pub.status == "unpublished":
        _set(item, Op.CREATE, "new")
        return
    _decide(item, changes_needed(pub.live, d, access_settled=pub.status == "published"), pub, "")


def _decide(item: PlanItem, changes: Changes, pub: LivePublication | None, reason: str) -> None:
    item.changes = changes
    if changes.new_version:
        _set(item, Op.UPDATE, reason or "content changed")
    elif changes.set_access:
        _set(item, Op.ACL, reason or "access changed")
    elif pub is None or pub.remote_id != item.remote_id or pub.status != "published":
        item.reason = reason or "record repaired"  # unchanged remotely; fix the row
    else:
        item.reason = reason


def _set(item: PlanItem, op: Op, reason: str) -> PlanItem:
    item.op, item.reason = op, reason
    return item


def _why_gone(org: OrgDesired, skill_id: str | None, tenant: str | None = None) -> str:
    if skill_id is not None and (tenant, skill_id) in org.disabled:
        return "disabled (kill switch)"
    return (
        "deprecated" if skill_id is not None and skill_id in org.deprecated else "no longer granted"
    )


def _plan_gone(org: OrgDesired, p: LivePublication, remote: Remote | None) -> PlanItem:
    """A recorded skill no longer desired: delete it (if it is still there)."""
    live = p.live if remote is None else remote.get(p.name)
    item = PlanItem(
        Op.DELETE,
        org.org_id,
        p.tenant_slug,
        p.name,
        reason=_why_gone(org, p.skill_id, p.tenant_slug),
        tenant_id=p.tenant_id,
        skill_id=p.skill_id,
        live=live,
    )
    if live is None:
        _set(item, Op.UNCHANGED, "already gone; record repaired")
    return item


def _plan_strays(org: OrgDesired, remote: Remote, handled: set[str]) -> list[PlanItem]:
    """Skills of ours on the target that nothing recorded wants: a revoked grant, a deprecated
    skill or a removed tenant. Another tenant's, or not ours: never touched."""
    items = []
    for name, r in sorted(remote.items()):
        reason = None if name in handled else _stray_reason(org, r)
        if reason is None or r.owner_tenant is None:
            continue
        items.append(
            PlanItem(
                Op.DELETE,
                org.org_id,
                r.owner_tenant,
                name,
                reason=f"{reason} (found remotely)",
                tenant_id=org.tenants.get(r.owner_tenant),
                live=r,
            )
        )
    return items


def _copies(
    remote: Iterable[LiveSkill], live: Sequence[LivePublication]
) -> dict[str, list[LiveSkill]]:
    """Our skills on the target by name, the one that stays first: the copy recorded in
    `publication`, else the first listed (the targets list the older first)."""
    recorded = {p.remote_id for p in live if p.remote_id is not None}
    out: dict[str, list[LiveSkill]] = {}
    for skill in remote:
        found = out.setdefault(skill.name, [])
        if skill.remote_id in recorded and found and found[0].remote_id not in recorded:
            found.insert(0, skill)
        else:
            found.append(skill)
    return out


def _plan_twins(
    org: OrgDesired, copies: Mapping[str, list[LiveSkill]], handled: set[str]
) -> list[PlanItem]:
    """Delete the twins of each name this run looks after (desired, gone or stray): a second
    proven copy is never what users should get, and a revoked grant must leave none live."""
    items = []
    for name, (kept, *twins) in sorted(copies.items()):
        if name not in handled:  # another tenant's: its own run heals it
            continue
        for twin in twins:
            owner = twin.owner_tenant or ""
            items.append(
                PlanItem(
                    Op.DELETE,
                    org.org_id,
                    owner,
                    name,
                    reason=f"twin of {kept.remote_id} (found remotely)",
                    tenant_id=org.tenants.get(owner),
                    live=twin,
                    twin_of=kept.remote_id,
                )
            )
    return items


def _stray_reason(org: OrgDesired, r: LiveSkill) -> str | None:
    owner = r.owner_tenant
    if owner in org.scope:
        return _why_gone(org, r.owner_skill, owner)
    if owner and org.whole_org and owner not in set(org.tenants) | org.other_tenants:
        return "tenant removed"
    return None
