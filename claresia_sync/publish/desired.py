"""Desired state: what should be live in each organisation, computed from the database.

For every tenant and sub-tenant: each catalog skill granted to at least one of its archetypes
(deprecated skills excluded), transpiled for that tenant's slug, with ACL = the workspaces mapped
to the tenant + the rbac groups of the archetypes granted the skill. A tenant and its
sub-tenants share the root's organisation, so the state is grouped per organisation.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from claresia_sync.api.connect import TenantConnection
from claresia_sync.db.models import (
    Archetype,
    CatalogSkill,
    SkillGrant,
    Tenant,
    WorkspaceMapping,
)
from claresia_sync.errors import UserError
from claresia_sync.ir import SkillIR, parse_ir
from claresia_sync.naming import NamingError, published_name
from claresia_sync.tenancy.lookup import org_connections, require_tenant
from claresia_sync.transpile import ClaudeSkill, transpile


@dataclass(frozen=True, order=True)
class Acl:
    workspace_ids: tuple[str, ...] = ()
    rbac_group_ids: tuple[str, ...] = ()

    @classmethod
    def of(cls, workspace_ids: Collection[str], rbac_group_ids: Collection[str]) -> Acl:
        return cls(tuple(sorted(set(workspace_ids))), tuple(sorted(set(rbac_group_ids))))

    def to_json(self) -> dict[str, list[str]]:
        return {
            "workspace_ids": list(self.workspace_ids),
            "rbac_group_ids": list(self.rbac_group_ids),
        }


@dataclass(frozen=True)
class DesiredSkill:
    """One (tenant, skill) that should be live; `error` set when it cannot be published."""

    tenant_id: int
    tenant_slug: str
    skill_id: str
    name: str
    acl: Acl
    skill: ClaudeSkill | None = None
    error: str | None = None

    def __repr__(self) -> str:  # short: the transpiled files can be large
        state = f"error={self.error!r}" if self.error else f"hash={self.content_hash}"
        return f"DesiredSkill({self.name}, {state})"

    @property
    def content_hash(self) -> str | None:
        return self.skill.content_hash if self.skill else None


@dataclass
class OrgDesired:
    """Desired state of one organisation (a root tenant and its sub-tenants)."""

    connection: TenantConnection
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

    def __repr__(self) -> str:
        return f"OrgDesired({self.org_id}, {len(self.skills)} skills, scope={sorted(self.scope)})"

    @property
    def org_id(self) -> str:
        return self.connection.org_id

    @property
    def root_slug(self) -> str:
        return self.connection.root_slug

    @property
    def whole_org(self) -> bool:
        return self.scope == set(self.tenants)

    def by_name(self) -> dict[str, DesiredSkill]:
        return {s.name: s for s in self.skills}


def _parse_catalog_ir(row: CatalogSkill) -> SkillIR | str:
    """The row's IR, or why it cannot be used (names the skill and the JSON pointer)."""
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


def desired_state(session: Session, tenant_slug: str | None = None) -> list[OrgDesired]:
    """Desired state of every organisation, or only of `tenant_slug` (and its sub-tenants).

    Never raises for one bad skill: an IR that does not load, a transpile error or two
    (tenant, skill) pairs that give the same published name in one organisation become
    `DesiredSkill.error`, so the rest proceeds.
    """
    tenants = {t.id: t for t in session.scalars(select(Tenant))}
    if tenant_slug is not None:
        wanted = require_tenant(session, tenant_slug)
        scope_ids = {wanted.id} | {t.id for t in tenants.values() if t.parent_id == wanted.id}
    else:
        scope_ids = set(tenants)

    orgs = {root_id: OrgDesired(conn) for root_id, conn in org_connections(session).items()}
    for t in tenants.values():
        org = orgs.get(t.parent_id or t.id)
        if org is None:
            continue  # a root tenant without a connection: nothing can be published for it
        org.tenants[t.slug] = t.id
        if t.id in scope_ids:
            org.scope.add(t.slug)

    workspaces: dict[int, list[str]] = defaultdict(list)
    for tenant_id, ws in session.execute(
        select(WorkspaceMapping.tenant_id, WorkspaceMapping.workspace_id)
    ):
        workspaces[tenant_id].append(ws)
    groups: dict[tuple[int, str], set[str]] = defaultdict(set)
    for tenant_id, skill_id, group in session.execute(
        select(Archetype.tenant_id, SkillGrant.skill_id, Archetype.rbac_group_id).join(
            SkillGrant, SkillGrant.archetype_id == Archetype.id
        )
    ):
        if tenant_id in scope_ids:
            groups[(tenant_id, skill_id)].add(group)

    needed = {skill_id for _, skill_id in groups}
    catalog: dict[str, tuple[str, SkillIR] | str] = {}  # skill id -> (IR hash, IR) or error
    deprecated: set[str] = set()
    if needed:
        for row in session.scalars(select(CatalogSkill).where(CatalogSkill.skill_id.in_(needed))):
            if row.deprecated:
                deprecated.add(row.skill_id)
                continue
            parsed = _parse_catalog_ir(row)
            if isinstance(parsed, str):
                catalog[row.skill_id] = parsed
            elif parsed.deprecated:
                deprecated.add(row.skill_id)
            else:
                catalog[row.skill_id] = (row.ir_hash, parsed)

    entries: list[tuple[OrgDesired, Tenant, str, Acl]] = []
    for (tenant_id, skill_id), rbac in sorted(
        groups.items(), key=lambda kv: (tenants[kv[0][0]].slug, kv[0][1])
    ):
        tenant = tenants[tenant_id]
        org = orgs.get(tenant.parent_id or tenant.id)
        if skill_id in deprecated or org is None:
            continue
        entries.append((org, tenant, skill_id, Acl.of(workspaces[tenant_id], rbac)))
    transpiled = transpile_many(
        [
            (ir_and_hash, t.slug)
            for _, t, skill_id, _ in entries
            if not isinstance(ir_and_hash := catalog[skill_id], str)
        ]
    )
    for org, tenant, skill_id, acl in entries:
        source = catalog[skill_id]
        ir_or_error = source if isinstance(source, str) else transpiled[(source[0], tenant.slug)]
        org.skills.append(_desired_skill(tenant, skill_id, acl, ir_or_error))
    every_slug = {t.slug for t in tenants.values()}
    for org in orgs.values():
        _fail_name_collisions(org)
        org.deprecated = deprecated
        org.other_tenants = every_slug - set(org.tenants)
    in_scope = sorted((o for o in orgs.values() if o.scope), key=lambda o: (o.root_slug, o.org_id))
    if tenant_slug is not None and not in_scope:
        raise UserError(
            f"tenant {tenant_slug!r} has no organisation connection (nor has its parent): add "
            "`connection:` to its entry in the tenant file and apply it"
        )
    return in_scope


def _desired_skill(
    tenant: Tenant, skill_id: str, acl: Acl, skill: ClaudeSkill | str
) -> DesiredSkill:
    try:
        name = published_name(tenant.slug, skill_id)
    except NamingError as exc:
        name = f"claresia-{tenant.slug}-{skill_id}"
        return DesiredSkill(tenant.id, tenant.slug, skill_id, name, acl, error=str(exc))
    if isinstance(skill, str):
        return DesiredSkill(tenant.id, tenant.slug, skill_id, name, acl, error=skill)
    return DesiredSkill(tenant.id, tenant.slug, skill_id, name, acl, skill=skill)


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
        out.append(DesiredSkill(s.tenant_id, s.tenant_slug, s.skill_id, s.name, s.acl, error=error))
    org.skills = out
