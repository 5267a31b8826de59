"""Desired state: what should be live in each organisation, computed from the database.

For every tenant and sub-tenant: each skill of its catalog release (release_store.py: the
tenant's own, else its parent's, else the current release) granted to at least one of its
archetypes (deprecated skills excluded), that release's IR transpiled for the tenant's slug,
with the access its target kind makes of the grant (org-skills: an ACL of the workspaces mapped
to the tenant + the rbac groups of the archetypes granted the skill). A skill disabled by the
kill switch (kill_switch.py) is left out, or kept with the access nobody has where its kind
says so (`TargetKind.disabled_access`: claude-enterprise), marked `disabled`: the planner then
writes its access only, never its content. A tenant and its
sub-tenants share the root's organisation, so the state is grouped per organisation.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from claresia_sync.api.connect import TenantConnection
from claresia_sync.db.models import (
    Archetype,
    CatalogIR,
    CatalogRelease,
    CatalogReleaseSkill,
    SkillGrant,
    Tenant,
    WorkspaceMapping,
)
from claresia_sync.errors import UserError
from claresia_sync.ir import SkillIR, parse_ir
from claresia_sync.naming import NamingError, published_name
from claresia_sync.publish.kill_switch import disabled_pairs
from claresia_sync.publish.targets import KINDS, ORG_SKILLS, Access, Grant, TargetKind
from claresia_sync.tenancy.lookup import require_tenant, target_connections
from claresia_sync.transpile import ClaudeSkill, transpile


@dataclass(frozen=True)
class DesiredSkill:
    """One (tenant, skill) that should be live; `error` set when it cannot be published."""

    tenant_id: int
    tenant_slug: str
    skill_id: str
    name: str
    access: Access
    """Who may use it, in the target's own terms (`TargetKind.desired_access`)."""
    skill: ClaudeSkill | None = None
    error: str | None = None
    release: int | None = None
    """The catalog release the content comes from."""
    disabled: bool = False
    """Kept by the kill switch with the access nobody has: its content is not written anywhere
    (no create, no new version) until it is enabled (planner.py, `_plan_disabled`)."""

    def __repr__(self) -> str:  # short: the transpiled files can be large
        state = f"error={self.error!r}" if self.error else f"hash={self.content_hash}"
        return f"DesiredSkill({self.name}, {state})"

    @property
    def content_hash(self) -> str | None:
        return self.skill.content_hash if self.skill else None

    @property
    def key(self) -> tuple[int, str]:
        return (self.tenant_id, self.skill_id)


@dataclass
class OrgDesired:
    """Desired state of one target of an organisation (a root tenant and its sub-tenants): one
    per target connection (`key`), so a root tenant on several targets has several."""

    connection: TenantConnection
    kind: TargetKind = ORG_SKILLS
    """The API the skills go through (`targets.KINDS[connection.target]`)."""
    tenants: dict[str, int] = field(default_factory=dict)
    """Every tenant of this organisation (slug -> id), in scope or not: remote skills of these
    tenants are ours to manage."""
    scope: set[str] = field(default_factory=set)
    """The tenants this run reconciles (all of `tenants` unless one tenant was asked for)."""
    skills: list[DesiredSkill] = field(default_factory=list)
    deprecated: set[str] = field(default_factory=set)
    """Catalog skills granted here but deprecated (to tell why a skill is deleted)."""
    other_tenants: set[str] = field(default_factory=set)
    """Slugs of the tenants of other organisations (a remote skill naming a tenant that is in
    neither set belongs to a removed tenant)."""
    disabled: set[tuple[str, str]] = field(default_factory=set)
    """(tenant slug, skill id) disabled by the kill switch, of the tenants in scope, granted or
    not: to tell why a skill is deleted, and what the kill-switch job does
    (`planner.only_disabled`)."""

    def __repr__(self) -> str:
        return f"OrgDesired({self.org_id}, {len(self.skills)} skills, scope={sorted(self.scope)})"

    @property
    def org_id(self) -> str:
        return self.connection.org_id

    @property
    def key(self) -> str:
        """This organisation's target (several targets can share one organisation)."""
        return f"{self.org_id} {self.connection.target_key}"

    def takes(self, grant: Grant) -> bool:
        """Whether a granted skill goes to this target: a claude-api target is one workspace,
        which takes the skills of the tenants mapped to it."""
        ws = self.connection.workspace_id
        return not ws or ws in grant.workspace_ids

    @property
    def label(self) -> str:
        """How errors name it: the org id (org-skills, as before), else org id and target."""
        if self.connection.target == ORG_SKILLS.name:
            return self.org_id
        return f"{self.org_id} ({self.connection.target_key})"

    @property
    def root_slug(self) -> str:
        return self.connection.root_slug

    @property
    def whole_org(self) -> bool:
        return self.scope == set(self.tenants)

    def by_name(self) -> dict[str, DesiredSkill]:
        return {s.name: s for s in self.skills}


# Parsed IR by (skill id, IR hash): the stored IR is parsed and validated once per process, not
# on every run (`ir_hash` identifies the IR, as the transpile cache below already relies on).
_PARSED: dict[tuple[str, str], SkillIR | str] = {}


class StoredIR(Protocol):
    """A stored IR: a `catalog_ir` row (a release's) or a `catalog_skill` row."""

    @property
    def skill_id(self) -> str: ...
    @property
    def ir_hash(self) -> str: ...
    @property
    def ir(self) -> dict[str, Any]: ...


def _parse_catalog_ir(row: StoredIR) -> SkillIR | str:
    """The row's IR, or why it cannot be used (names the skill and the JSON pointer)."""
    key = (row.skill_id, row.ir_hash)
    parsed = _PARSED.get(key)
    if parsed is None:
        if len(_PARSED) >= CACHE_MAX:
            _PARSED.clear()
        parsed = _PARSED[key] = _parse_uncached(row)
    return parsed


def _parse_uncached(row: StoredIR) -> SkillIR | str:
    result = parse_ir(json.dumps(row.ir).encode(), f"catalog skill {row.skill_id!r}")
    if isinstance(result, list):
        shown = "; ".join(str(p) for p in result[:3])
        more = f" (+{len(result) - 3} more)" if len(result) > 3 else ""
        return f"invalid Skill IR: {shown}{more}; fix the file and `catalog import` it again"
    if result.ir.skill_id != row.skill_id:
        return (
            f"invalid Skill IR: catalog skill {row.skill_id!r} holds an IR whose skill_id is "
            f"{result.ir.skill_id!r}; fix the file and `catalog import` it again"
        )
    return result.ir


Catalog = dict[str, tuple[str, SkillIR] | str]
"""Granted catalog skills that are not deprecated: skill id -> (IR hash, IR), or why unusable."""


def desired_state(
    session: Session, tenant_slug: str | None = None, *, roots: Collection[str] | None = None
) -> list[OrgDesired]:
    """Desired state of every organisation, or only of `tenant_slug` (and its sub-tenants), or
    only of the root tenants named in `roots` (and their sub-tenants; unknown names are none).

    Never raises for one bad skill: an IR that does not load, a transpile error or two
    (tenant, skill) pairs that give the same published name in one organisation become
    `DesiredSkill.error`, so the rest proceeds.
    """
    # One tenant's run (a republish-all's unit) reads and builds its own organisation only: a
    # run of each of a thousand organisations must not read all thousand every time.
    tenants, scope_ids, root_ids = _scope(session, tenant_slug, roots)
    orgs = _organisations(session, tenants, scope_ids, root_ids)
    grants = _grants(session, None if root_ids is None else scope_ids)
    off = disabled_pairs(session, {i: tenants[i] for i in scope_ids})
    on_release = _releases(session, tenants, {tenant_id for tenant_id, _ in grants})
    releases = {
        number: _catalog(session, number, {s for t, s in grants if on_release[t] == number})
        for number in set(on_release.values())
    }
    entries = [
        (org, tenants[tenant_id], skill_id, grant, on_release[tenant_id])
        for (tenant_id, skill_id), grant in sorted(
            grants.items(), key=lambda kv: (tenants[kv[0][0]].slug, kv[0][1])
        )
        if skill_id in releases[on_release[tenant_id]][0]
        for org in _orgs_of(orgs, tenants[tenant_id])
        if org.takes(grant)
    ]
    _add_skills(entries, releases, off)
    every_slug = (
        {t.slug for t in tenants.values()}
        if root_ids is None
        else set(session.scalars(select(Tenant.slug)))
    )
    every_org = [org for targets in orgs.values() for org in targets]
    in_scope = sorted((o for o in every_org if o.scope), key=lambda o: (o.root_slug, o.key))
    off_by_tenant: dict[int, set[str]] = defaultdict(set)
    for tenant_id, skill_id in off:
        off_by_tenant[tenant_id].add(skill_id)
    for org in in_scope:  # only those returned (each is O(tenants): not once per organisation)
        _fail_name_collisions(org)
        org.disabled = {
            (slug, skill_id)
            for slug in org.scope
            for skill_id in off_by_tenant.get(org.tenants[slug], ())
        }
        org.deprecated = {
            skill_id
            for number in {on_release[t] for t in org.tenants.values() if t in on_release}
            for skill_id in releases[number][1]
        }
        org.other_tenants = every_slug - set(org.tenants)
    if tenant_slug is not None and not in_scope:
        raise UserError(
            f"tenant {tenant_slug!r} has no organisation connection (nor has its parent): add "
            f"`targets:` ({', '.join(KINDS)}) to its entry in the tenant file and apply it"
        )
    return in_scope


def _scope(
    session: Session, tenant_slug: str | None, roots: Collection[str] | None = None
) -> tuple[dict[int, Tenant], set[int], set[int] | None]:
    """The tenants read (by id), the ids of those this run reconciles and its root tenants'
    (None: every tenant). One tenant's run reads its organisation only: the root tenant and
    its sub-tenants (the two levels a tenant has), and reconciles it and its sub-tenants;
    `roots` (a sweep of split units, `publish/unit_sweep.py`), those organisations whole."""
    if roots is not None:
        root_ids = set(
            session.scalars(
                select(Tenant.id).where(Tenant.slug.in_(roots), Tenant.parent_id.is_(None))
            )
        )
        tenants = {
            t.id: t
            for t in session.scalars(
                select(Tenant).where(Tenant.id.in_(root_ids) | Tenant.parent_id.in_(root_ids))
            )
        }
        return tenants, set(tenants), root_ids
    if tenant_slug is None:
        tenants = {t.id: t for t in session.scalars(select(Tenant))}
        return tenants, set(tenants), None
    wanted = require_tenant(session, tenant_slug)
    root = wanted.parent_id or wanted.id
    tenants = {
        t.id: t
        for t in session.scalars(
            select(Tenant).where((Tenant.id == root) | (Tenant.parent_id == root))
        )
    }
    scope = {wanted.id} | {t.id for t in tenants.values() if t.parent_id == wanted.id}
    return tenants, scope, {root}


def _orgs_of(orgs: dict[int, list[OrgDesired]], tenant: Tenant) -> list[OrgDesired]:
    return orgs.get(tenant.parent_id or tenant.id, [])


def _organisations(
    session: Session,
    tenants: dict[int, Tenant],
    scope_ids: set[int],
    roots: set[int] | None = None,
) -> dict[int, list[OrgDesired]]:
    """One entry per target of each root tenant (of `roots`, or all; by root id), with its
    tenants and scope; a root tenant without a target has nothing that can be published."""
    orgs = {
        root_id: [OrgDesired(c, KINDS[c.target]) for c in conns if c.target in KINDS]
        for root_id, conns in target_connections(session, roots).items()
    }
    for t in tenants.values():
        for org in _orgs_of(orgs, t):
            org.tenants[t.slug] = t.id
            if t.id in scope_ids:
                org.scope.add(t.slug)
    return orgs


def _grants(session: Session, scope_ids: set[int] | None) -> dict[tuple[int, str], Grant]:
    """(tenant id, skill id) -> the tenant's workspaces and the groups granted the skill, for
    the tenants of `scope_ids` (None: every tenant). Only their rows are read: a unit of a
    republish-all read every tenant's grants (10,000 rows for 200 organisations) to keep 50."""
    mappings = select(WorkspaceMapping.tenant_id, WorkspaceMapping.workspace_id)
    granted = select(
        Archetype.tenant_id,
        SkillGrant.skill_id,
        Archetype.rbac_group_id,
        Archetype.installation_preference,
    ).join(SkillGrant, SkillGrant.archetype_id == Archetype.id)
    if scope_ids is not None:
        mappings = mappings.where(WorkspaceMapping.tenant_id.in_(scope_ids))
        granted = granted.where(Archetype.tenant_id.in_(scope_ids))
    workspaces: dict[int, set[str]] = defaultdict(set)
    for tenant_id, ws in session.execute(mappings):
        workspaces[tenant_id].add(ws)
    groups: dict[tuple[int, str], set[tuple[str, str]]] = defaultdict(set)
    for tenant_id, skill_id, group, preference in session.execute(granted):
        groups[(tenant_id, skill_id)].add((group, preference))
    # Equal grants are one object (a tenant grants most skills alike): 10,000 (tenant, skill)
    # pairs make a few hundred, and their access is computed once each (`_add_skills`).
    shared: dict[Grant, Grant] = {}
    out = {}
    for (tenant_id, skill_id), rbac in groups.items():
        grant = Grant(
            tuple(sorted(workspaces[tenant_id])),
            tuple(sorted({g for g, _ in rbac})),
            tuple(sorted(rbac)),
        )
        out[(tenant_id, skill_id)] = shared.setdefault(grant, grant)
    return out


def _releases(session: Session, tenants: dict[int, Tenant], granted: set[int]) -> dict[int, int]:
    """The release each tenant with grants is on: its own, else its parent's, else the current
    one. No release at all (a catalog written without `catalog import`) is an error: publishing
    nothing would unpublish what is live."""
    current = session.scalar(select(CatalogRelease.number).where(CatalogRelease.is_current))
    out = {}
    for tenant_id in granted:
        tenant = tenants[tenant_id]
        parent = tenants.get(tenant.parent_id) if tenant.parent_id else None
        number = tenant.release or (parent.release if parent else None) or current
        if number is None:
            raise UserError(
                f"tenant {tenant.slug!r} is on no catalog release and none is current: "
                "`claresia-sync catalog import` makes one (docs/releases.md)"
            )
        out[tenant_id] = number
    return out


def _catalog(session: Session, release: int, needed: set[str]) -> tuple[Catalog, set[str]]:
    """The usable IR of each needed skill of `release`, and those the release deprecates (a
    skill not in the release is in neither: it is not published)."""
    catalog: Catalog = {}
    deprecated: set[str] = set()
    if not needed:
        return catalog, deprecated
    rows = session.execute(
        select(CatalogIR.skill_id, CatalogIR.ir_hash, CatalogReleaseSkill.deprecated)
        .join(
            CatalogReleaseSkill,
            (CatalogReleaseSkill.skill_id == CatalogIR.skill_id)
            & (CatalogReleaseSkill.ir_hash == CatalogIR.ir_hash),
        )
        .where(CatalogReleaseSkill.release == release, CatalogReleaseSkill.skill_id.in_(needed))
    ).all()
    # The IR itself is read only where this process has not parsed it yet: reading and decoding
    # every needed skill's JSON on each run was most of a small job's desired state.
    parsed = {key: _PARSED[key] for key in {(s, h) for s, h, _ in rows} if key in _PARSED}
    unread = [(s, h) for s, h, gone in rows if not gone and (s, h) not in parsed]
    if unread:
        for row in session.scalars(
            select(CatalogIR).where(tuple_(CatalogIR.skill_id, CatalogIR.ir_hash).in_(unread))
        ):
            parsed[(row.skill_id, row.ir_hash)] = _parse_catalog_ir(row)
    for skill_id, ir_hash, gone in rows:
        ir = None if gone else parsed[(skill_id, ir_hash)]
        if ir is None or (not isinstance(ir, str) and ir.deprecated):
            deprecated.add(skill_id)
        else:
            catalog[skill_id] = ir if isinstance(ir, str) else (ir_hash, ir)
    return catalog, deprecated


Entry = tuple[OrgDesired, Tenant, str, Grant, int]
"""(organisation, tenant, skill id, grant, release)."""


def _add_skills(
    entries: list[Entry],
    releases: dict[int, tuple[Catalog, set[str]]],
    off: set[tuple[int, str]],
) -> None:
    """Transpile each (tenant, skill) and add it to its organisation, with its access; a
    disabled one only where its kind keeps it, with the access nobody has."""
    kept = []
    for entry in entries:
        org, tenant, skill_id, _, _ = entry
        if (tenant.id, skill_id) not in off:
            kept.append(entry)
            continue
        if org.kind.disabled_access() is not None:
            kept.append(entry)
    entries = kept
    transpiled = transpile_many(
        [
            (ir_and_hash, t.slug)
            for _, t, skill_id, _, number in entries
            if not isinstance(ir_and_hash := releases[number][0][skill_id], str)
        ]
    )
    accesses: dict[tuple[str, Grant], Access] = {}
    for org, tenant, skill_id, grant, number in entries:
        source = releases[number][0][skill_id]
        ir_or_error = source if isinstance(source, str) else transpiled[(source[0], tenant.slug)]
        access = accesses.get((org.kind.name, grant))
        if access is None:
            access = accesses[(org.kind.name, grant)] = org.kind.desired_access(grant)
        wanted = _desired_skill(tenant, skill_id, access, ir_or_error, number)
        if (tenant.id, skill_id) in off:
            wanted = replace(wanted, access=org.kind.disabled_access() or access, disabled=True)
        org.skills.append(wanted)


def _desired_skill(
    tenant: Tenant, skill_id: str, access: Access, skill: ClaudeSkill | str, release: int
) -> DesiredSkill:
    """A transpiled skill carries its published name (computed once, by the transpiler); a
    skill that could not be transpiled is named here, for its error."""
    if isinstance(skill, ClaudeSkill):
        return DesiredSkill(
            tenant.id, tenant.slug, skill_id, skill.name, access, skill=skill, release=release
        )
    try:
        name, error = published_name(tenant.slug, skill_id), skill
    except NamingError as exc:
        name, error = f"claresia-{tenant.slug}-{skill_id}", str(exc)
    return DesiredSkill(
        tenant.id, tenant.slug, skill_id, name, access, error=error, release=release
    )


# Transpiling is the costly part of a run that changes nothing (0.3 ms a skill: 3 s for
# 10,000). Its output depends only on the IR and the tenant slug, so a long-lived process (the
# daemon) keeps it by (IR hash, tenant). (Worker processes do not pay on 2 cores: shipping the
# 60 MB of results back costs more than the transpile saves.)
_CACHE: dict[tuple[str, str], ClaudeSkill | str] = {}
CACHE_MAX = 100_000


def _transpile_one(ir: SkillIR, tenant: str) -> ClaudeSkill | str:
    try:
        return transpile(ir, tenant)
    except Exception as exc:  # one skill's transpile bug must not stop the others
        return f"cannot transpile skill {ir.skill_id!r} for tenant {tenant!r}: {exc}"


def transpile_many(
    pairs: Sequence[tuple[tuple[str, SkillIR], str]],
) -> dict[tuple[str, str], ClaudeSkill | str]:
    """Transpile each ((IR hash, IR), tenant); the result (or error) by (IR hash, tenant)."""
    out: dict[tuple[str, str], ClaudeSkill | str] = {}
    for (ir_hash, ir), tenant in pairs:
        key = (ir_hash, tenant)
        hit = _CACHE.get(key)
        if hit is None:
            hit = _transpile_one(ir, tenant)
            if len(_CACHE) >= CACHE_MAX:
                _CACHE.clear()
            _CACHE[key] = hit
        out[key] = hit
    return out


def _fail_name_collisions(org: OrgDesired) -> None:
    """Two pairs giving one published name would overwrite each other: fail both."""
    owners: dict[str, list[DesiredSkill]] = defaultdict(list)
    for s in org.skills:
        owners[s.name].append(s)
    clashes = {name: group for name, group in owners.items() if len(group) > 1}
    if not clashes:
        return
    out = []
    for s in org.skills:
        group = clashes.get(s.name)
        if group is None:
            out.append(s)
            continue
        pairs = " and ".join(f"tenant {g.tenant_slug!r} skill {g.skill_id!r}" for g in group)
        error = (
            f"published name {s.name!r} in organisation {org.org_id} is produced by {pairs}: "
            "rename the skill or the sub-tenant so the names differ"
        )
        out.append(replace(s, skill=None, error=error))
    org.skills = out
