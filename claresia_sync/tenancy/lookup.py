"""Questions other parts ask of the tenant configuration (publisher, poller, CLI)."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, replace

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from claresia_sync.api.connect import (
    DEFAULT_BASE_URL,
    TenantConnection,
    ZeroRetention,
)
from claresia_sync.db.models import (
    Archetype,
    OrgConnection,
    SkillGrant,
    Tenant,
    TenantTarget,
    WorkspaceMapping,
    ZeroRetentionAttestation,
)
from claresia_sync.errors import UserError
from claresia_sync.publish.targets import KINDS
from claresia_sync.publish.targets.section import StoredTarget

log = logging.getLogger(__name__)


class UnknownTenantError(UserError):
    pass


def require_tenant(session: Session, slug: str) -> Tenant:
    """The tenant `slug`; the one "unknown tenant" error (naming the known ones) otherwise."""
    tenant = session.scalar(select(Tenant).where(Tenant.slug == slug))
    if tenant is None:
        known = ", ".join(session.scalars(select(Tenant.slug).order_by(Tenant.slug))) or "none"
        raise UnknownTenantError(
            f"unknown tenant {slug!r} (known: {known}); add it with `claresia-sync tenants apply`"
        )
    return tenant


def root_slugs(session: Session, tenant_slug: str | None) -> list[str]:
    """The root tenants a publish of `tenant_slug` touches (None: every tenant), sorted: a
    sub-tenant's run is its root's; an unknown slug touches none."""
    if tenant_slug is None:
        return sorted(session.scalars(select(Tenant.slug).where(Tenant.parent_id.is_(None))))
    tenant = session.scalar(select(Tenant).where(Tenant.slug == tenant_slug))
    if tenant is None:
        return []
    return [(tenant.parent or tenant).slug]


def no_connection_error(root_slug: str) -> UserError:
    return UserError(
        f"tenant {root_slug!r} has no organisation connection: add `targets:` "
        f"({', '.join(KINDS)}) to its entry in the tenant file and apply it"
    )


def _connection(row: OrgConnection, tenant_slug: str, root_slug: str) -> TenantConnection:
    return TenantConnection(
        tenant_slug=tenant_slug,
        root_slug=root_slug,
        org_id=row.org_id,
        admin_key_ref=row.admin_key_ref,
        base_url=row.base_url or DEFAULT_BASE_URL,
    )


def get_connection(session: Session, tenant_slug: str) -> TenantConnection:
    """Organisation, key reference and base URL of a tenant (sub-tenants use their parent's)."""
    tenant = require_tenant(session, tenant_slug)
    root = tenant.parent or tenant
    conn = session.get(OrgConnection, root.id)
    if conn is None:
        raise no_connection_error(root.slug)
    return _connection(conn, tenant.slug, root.slug)


def org_connections(session: Session) -> dict[int, TenantConnection]:
    """Every root tenant's connection, by root tenant id, in order of root slug."""
    rows = session.execute(
        select(OrgConnection, Tenant.slug)
        .join(Tenant, Tenant.id == OrgConnection.tenant_id)
        .order_by(Tenant.slug)
    ).all()
    return {conn.tenant_id: _connection(conn, slug, slug) for conn, slug in rows}


def target_connections(
    session: Session, root_ids: set[int] | None = None
) -> dict[int, list[TenantConnection]]:
    """Every target of every root tenant (or of `root_ids`), by root id: its organisation
    connection (org-skills, `org_connection`) first, then each target of `tenant_target` in the
    order of `targets.KINDS`, fanned out by its kind (claude-api: once per workspace key)."""
    tenants = select(Tenant.id, Tenant.slug)
    attestations = select(
        ZeroRetentionAttestation.tenant_id,
        ZeroRetentionAttestation.attested_by,
        ZeroRetentionAttestation.attested_at,
    )
    connections, targets = select(OrgConnection), select(TenantTarget)
    if root_ids is not None:  # read only theirs (one organisation's run among a thousand)
        tenants = tenants.where(Tenant.id.in_(root_ids))
        attestations = attestations.where(ZeroRetentionAttestation.tenant_id.in_(root_ids))
        connections = connections.where(OrgConnection.tenant_id.in_(root_ids))
        targets = targets.where(TenantTarget.tenant_id.in_(root_ids))
    slugs: dict[int, str] = {i: s for i, s in session.execute(tenants)}
    attested = {i: ZeroRetention(by, at) for i, by, at in session.execute(attestations)}
    out: dict[int, list[TenantConnection]] = defaultdict(list)
    for conn in session.scalars(connections):
        slug = slugs[conn.tenant_id]
        out[conn.tenant_id].append(
            replace(_connection(conn, slug, slug), zero_retention=attested.get(conn.tenant_id))
        )
    order = list(KINDS)
    rows = session.scalars(targets.order_by(TenantTarget.tenant_id, TenantTarget.kind))
    for t in sorted(rows, key=lambda t: order.index(t.kind) if t.kind in KINDS else len(order)):
        slug = slugs[t.tenant_id]
        kind = KINDS.get(t.kind)
        if kind is None:  # stored by a version that had the kind: skip it, publish the others
            log.warning(
                "tenant %r: target kind %r is not known here (known: %s): skipped; apply the "
                "tenants file again",
                slug,
                t.kind,
                ", ".join(KINDS),
            )
            continue
        base = TenantConnection(
            tenant_slug=slug,
            root_slug=slug,
            org_id=t.org_id,
            admin_key_ref=t.admin_key_ref or "",
            base_url=t.base_url or DEFAULT_BASE_URL,
            target=t.kind,
            zero_retention=attested.get(t.tenant_id),
        )
        stored = StoredTarget(t.org_id, t.admin_key_ref, t.base_url, dict(t.workspace_key_refs))
        out[t.tenant_id] += kind.connections(base, stored)
    return {k: v for k, v in out.items() if root_ids is None or k in root_ids}


def tenant_targets(session: Session, tenant_slug: str) -> list[TenantConnection]:
    """The targets of a tenant (a sub-tenant's are its root's), as `target_connections`."""
    tenant = require_tenant(session, tenant_slug)
    root = tenant.parent or tenant
    found = target_connections(session, {root.id}).get(root.id, [])
    if not found:
        raise no_connection_error(root.slug)
    return [replace(c, tenant_slug=tenant.slug) for c in found]


def workspaces_and_groups(session: Session, tenant_slug: str) -> tuple[list[str], list[str]]:
    """The workspaces mapped to a tenant and its sub-tenants, and their archetypes' rbac
    groups, sorted: what the tenant's connection must be able to grant."""
    tenant = require_tenant(session, tenant_slug)
    ids = [tenant.id, *(t.id for t in tenant.children)]
    workspaces = session.scalars(
        select(WorkspaceMapping.workspace_id).where(WorkspaceMapping.tenant_id.in_(ids))
    )
    groups = session.scalars(select(Archetype.rbac_group_id).where(Archetype.tenant_id.in_(ids)))
    return sorted(set(workspaces)), sorted(set(groups))


@dataclass(frozen=True)
class WorkspaceOwner:
    tenant_slug: str
    parent_tenant_slug: str | None


def tenant_for_workspace(session: Session, org_id: str, workspace_id: str) -> WorkspaceOwner | None:
    """The tenant or sub-tenant a workspace maps to, or None (the event goes to quarantine)."""
    parent = aliased(Tenant)
    row = session.execute(
        select(Tenant.slug, parent.slug)
        .join(WorkspaceMapping, WorkspaceMapping.tenant_id == Tenant.id)
        .outerjoin(parent, parent.id == Tenant.parent_id)
        .where(WorkspaceMapping.org_id == org_id, WorkspaceMapping.workspace_id == workspace_id)
    ).one_or_none()
    return None if row is None else WorkspaceOwner(row[0], row[1])


@dataclass(frozen=True)
class GrantedSkill:
    """A skill a tenant should have live, and its ACL (docs/interfaces.md section 3)."""

    skill_id: str
    workspace_ids: tuple[str, ...]
    """The workspaces mapped to the tenant."""
    rbac_group_ids: tuple[str, ...]
    """The groups of the tenant's archetypes that are granted this skill."""


def granted_skills(session: Session, tenant_slug: str) -> list[GrantedSkill]:
    """Skills granted to any archetype of the tenant, sorted by id (catalog flags not applied)."""
    tenant = require_tenant(session, tenant_slug)
    workspaces = tuple(
        sorted(
            session.scalars(
                select(WorkspaceMapping.workspace_id).where(WorkspaceMapping.tenant_id == tenant.id)
            )
        )
    )
    groups: dict[str, set[str]] = defaultdict(set)
    rows = session.execute(
        select(SkillGrant.skill_id, Archetype.rbac_group_id)
        .join(Archetype, Archetype.id == SkillGrant.archetype_id)
        .where(Archetype.tenant_id == tenant.id)
    )
    for skill_id, group in rows:
        groups[skill_id].add(group)
    return [GrantedSkill(s, workspaces, tuple(sorted(groups[s]))) for s in sorted(groups)]


@dataclass(frozen=True)
class TenantSummary:
    slug: str
    display_name: str
    parent_slug: str | None
    org_id: str | None
    workspace_ids: tuple[str, ...]
    archetypes: tuple[str, ...]
    grants: int


def list_tenants(session: Session) -> list[TenantSummary]:
    """Every tenant, each root followed by its sub-tenants."""
    tenants = list(session.scalars(select(Tenant)))
    by_id = {t.id: t for t in tenants}
    orgs = {t.tenant_id: t.org_id for t in session.scalars(select(TenantTarget))}
    orgs |= {c.tenant_id: c.org_id for c in session.scalars(select(OrgConnection))}
    workspaces: dict[int, list[str]] = defaultdict(list)
    for m in session.scalars(select(WorkspaceMapping).order_by(WorkspaceMapping.workspace_id)):
        workspaces[m.tenant_id].append(m.workspace_id)
    archetypes: dict[int, list[str]] = defaultdict(list)
    grants: dict[int, int] = defaultdict(int)
    for a in session.scalars(select(Archetype).order_by(Archetype.slug)):
        archetypes[a.tenant_id].append(a.slug)
        grants[a.tenant_id] += len(a.grants)

    def order(t: Tenant) -> tuple[str, int, str]:
        root = by_id[t.parent_id] if t.parent_id else t
        return (root.slug, 0 if t.parent_id is None else 1, t.slug)

    out = []
    for t in sorted(tenants, key=order):
        root_id = t.parent_id or t.id
        out.append(
            TenantSummary(
                slug=t.slug,
                display_name=t.display_name,
                parent_slug=by_id[t.parent_id].slug if t.parent_id else None,
                org_id=orgs.get(root_id),
                workspace_ids=tuple(workspaces[t.id]),
                archetypes=tuple(archetypes[t.id]),
                grants=grants[t.id],
            )
        )
    return out
