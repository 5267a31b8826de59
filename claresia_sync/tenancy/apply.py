"""Apply a tenant file declaratively: the file is the truth for the tenants it lists.

Tenants not in the file are left alone unless `prune`; a root tenant's entry also owns its
sub-tenants (one missing from the file is removed). Applying the same file twice changes nothing.
Runs inside the caller's transaction: commit to apply, roll back for a dry run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from claresia_sync.db.models import (
    Archetype,
    CatalogSkill,
    ClaudeCodeSettings,
    OrgConnection,
    OtlpToken,
    Publication,
    SkillGrant,
    Tenant,
    TenantTarget,
    WorkspaceMapping,
    ZeroRetentionAttestation,
)
from claresia_sync.publish.targets import KINDS
from claresia_sync.tenancy.schema import (
    SubTenantSpec,
    TenantConfigError,
    TenantsFile,
    TenantSpec,
    organisation_connection,
)


@dataclass(frozen=True)
class Change:
    op: str  # "+" added, "-" removed, "~" changed
    what: str

    def __str__(self) -> str:
        return f"{self.op} {self.what}"


def apply_tenants(
    session: Session, config: TenantsFile, *, source: str = "tenants.yaml", prune: bool = False
) -> list[Change]:
    """Bring the database in line with `config`; the changes made (empty when already so)."""
    tenants = {t.slug: t for t in session.scalars(select(Tenant))}
    in_file = {spec.slug for _, spec, _ in config.entries()}
    roots_in_file = {root.slug for root in config.tenants}
    doomed = [
        t
        for slug, t in tenants.items()
        if slug not in in_file
        and (prune or (t.parent is not None and t.parent.slug in roots_in_file))
    ]
    _check_against_db(session, config, source, in_file, doomed)

    changes: list[Change] = []
    # Tenants first (a sub-tenant may move away from a tenant that is then removed).
    for _, spec, root in config.entries():
        changes += _tenant(session, tenants, spec, None if spec is root else tenants[root.slug])
    session.flush()
    for t in sorted(doomed, key=lambda t: t.parent_id is None):  # sub-tenants first
        session.execute(delete(Publication).where(Publication.tenant_id == t.id))
        session.execute(delete(Tenant).where(Tenant.id == t.id))
        changes.append(Change("-", f"tenant {t.slug}"))
        del tenants[t.slug]
    session.expire_all()
    for _, spec, root in config.entries():
        mine = root if spec is root else None
        changes += _connection(session, tenants[spec.slug], mine)
        changes += _targets(session, tenants[spec.slug], mine)
        changes += _attestation(session, tenants[spec.slug], mine)
        changes += _otlp_token(session, tenants[spec.slug], mine)
        changes += _claude_code_settings(session, tenants[spec.slug], mine)
    session.flush()
    changes += _workspaces(session, config, tenants)
    for _, spec, _ in config.entries():
        changes += _archetypes(session, tenants[spec.slug], spec)
    session.flush()
    return changes


def _check_against_db(
    session: Session, config: TenantsFile, source: str, in_file: set[str], doomed: list[Tenant]
) -> None:
    problems: list[str] = []
    known = set(session.scalars(select(CatalogSkill.skill_id)))
    grants = [
        (f"{path}.archetypes[{a}].grants[{g}]", skill)
        for path, spec, _ in config.entries()
        for a, arch in enumerate(spec.archetypes)
        for g, skill in enumerate(arch.grants)
    ]
    if grants and not known:
        raise TenantConfigError(
            source,
            [
                f"{source}: the skill catalog is empty and grants name catalog skill ids: "
                "import it first with `claresia-sync catalog import skills_ir/catalog`"
            ],
        )
    for where, skill in grants:
        if skill not in known:
            problems.append(
                f"{source}: {where}: unknown skill {skill!r} (not in the catalog: fix the id "
                "or import the skill with `claresia-sync catalog import`)"
            )
    # Workspaces and organisations held by tenants that this file does not manage.
    managed = in_file | {t.slug for t in doomed}
    owner_of_ws = {
        (m.org_id, m.workspace_id): m.tenant.slug for m in session.scalars(select(WorkspaceMapping))
    }
    owner_of_org = {c.org_id: c.tenant.slug for c in session.scalars(select(OrgConnection))}
    slug_of = {t.id: t.slug for t in session.scalars(select(Tenant))}
    for target in session.scalars(select(TenantTarget)):
        owner_of_org.setdefault(target.org_id, slug_of[target.tenant_id])
    for path, spec, root in config.entries():
        org = root.org_id
        if spec is root and owner_of_org.get(org, spec.slug) not in managed | {spec.slug}:
            problems.append(
                f"{source}: {path}.{root.org_ids()[0][0]}: organisation {org!r} is connected to "
                f"tenant {owner_of_org[org]!r}, which this file does not list"
            )
        for w, ws in enumerate(spec.workspaces):
            owner = owner_of_ws.get((org, ws.id))
            if owner is not None and owner not in managed:
                problems.append(
                    f"{source}: {path}.workspaces[{w}]: workspace {ws.id!r} is mapped to tenant "
                    f"{owner!r}, which this file does not list: remove it there first"
                )
    for t in doomed:
        live = session.scalar(
            select(func.count())
            .select_from(Publication)
            .where(
                Publication.tenant_id == t.id,
                Publication.remote_skill_id.is_not(None),
                Publication.status != "unpublished",
            )
        )
        if live:
            problems.append(
                f"{source}: tenant {t.slug!r} would be removed but has {live} published skill(s):"
                " unpublish them first (remove its grants and publish), then remove the tenant"
            )
        claude_code = session.get(ClaudeCodeSettings, t.id)
        if claude_code is not None and claude_code.owned:
            problems.append(
                f"{source}: tenant {t.slug!r} would be removed but its Claude Code settings are "
                f"still in {len(claude_code.owned)} rbac group(s): set "
                "`otlp.manage_claude_code_settings: false`, apply, run `claresia-sync otlp "
                f"configure --tenant {t.slug}`, then remove the tenant"
            )
    if problems:
        raise TenantConfigError(source, problems)


def _tenant(
    session: Session, tenants: dict[str, Tenant], spec: SubTenantSpec, parent: Tenant | None
) -> list[Change]:
    t = tenants.get(spec.slug)
    if t is None:
        t = Tenant(slug=spec.slug, display_name=spec.title, parent=parent)
        session.add(t)
        session.flush()
        tenants[spec.slug] = t
        under = f" under {parent.slug}" if parent else ""
        return [Change("+", f"tenant {spec.slug} ({spec.title}){under}")]
    changes = []
    if t.display_name != spec.title:
        changes.append(Change("~", f"tenant {t.slug} name: {t.display_name!r} -> {spec.title!r}"))
        t.display_name = spec.title
    if t.parent_id != (parent.id if parent else None):
        old = t.parent.slug if t.parent else "(root)"
        changes.append(
            Change("~", f"tenant {t.slug} parent: {old} -> {parent.slug if parent else '(root)'}")
        )
        t.parent = parent
    return changes


def _connection(session: Session, tenant: Tenant, root: TenantSpec | None) -> list[Change]:
    """The root's organisation connection (the section of the kind that is it, org-skills,
    whichever spelling gave it); a sub-tenant has none (it uses its parent's)."""
    conn = session.get(OrgConnection, tenant.id)
    if root is None:
        if conn is None:
            return []
        session.delete(conn)
        return [Change("-", f"connection {tenant.slug} (now a sub-tenant)")]
    home = organisation_connection()
    section = root.section(home.name) if home is not None else None
    if home is None or section is None:  # not (or no longer) on org-skills
        if conn is None:
            return []
        session.delete(conn)
        return [Change("-", f"connection {tenant.slug} ({home.name if home else 'none'})")]
    want = section.stored()
    if conn is None:
        session.add(
            OrgConnection(
                tenant_id=tenant.id,
                org_id=want.org_id,
                admin_key_ref=want.admin_key_ref,
                base_url=want.base_url,
            )
        )
        return [
            Change("+", f"connection {tenant.slug}: org {want.org_id}, key {want.admin_key_ref}")
        ]
    changes = []
    for field, value in (
        ("org_id", want.org_id),
        ("admin_key_ref", want.admin_key_ref),
        ("base_url", want.base_url),
    ):
        if getattr(conn, field) != value:
            changes.append(
                Change("~", f"connection {tenant.slug} {field}: {getattr(conn, field)} -> {value}")
            )
            setattr(conn, field, value)
    return changes


def _targets(session: Session, tenant: Tenant, root: TenantSpec | None) -> list[Change]:
    """The root's targets, one row per kind as its section stores it (keys by reference), but
    the organisation connection (`_connection`); none for a sub-tenant."""
    have = {
        t.kind: t
        for t in session.scalars(select(TenantTarget).where(TenantTarget.tenant_id == tenant.id))
    }
    want: dict[str, dict[str, Any]] = {
        kind: asdict(section.stored())
        for kind, section in (root.target_sections() if root is not None else [])
        if not KINDS[kind].organisation_connection
    }
    changes: list[Change] = []
    for kind, row in have.items():
        if kind not in want:
            session.delete(row)
            changes.append(Change("-", f"target {tenant.slug} {kind}"))
    for kind, values in want.items():
        found = have.get(kind)
        if found is None:
            session.add(TenantTarget(tenant_id=tenant.id, kind=kind, **values))
            keys = [values["admin_key_ref"], *values["workspace_key_refs"].values()]
            refs = ", ".join(str(k) for k in keys if k)
            changes.append(
                Change("+", f"target {tenant.slug} {kind}: org {values['org_id']}, keys {refs}")
            )
            continue
        for field, value in values.items():
            if getattr(found, field) != value:
                changes.append(
                    Change(
                        "~",
                        f"target {tenant.slug} {kind} {field}: {getattr(found, field)} -> {value}",
                    )
                )
                setattr(found, field, value)
    return changes


def _attestation(session: Session, tenant: Tenant, root: TenantSpec | None) -> list[Change]:
    row = session.get(ZeroRetentionAttestation, tenant.id)
    want = root.zero_retention if root is not None else None
    if want is None:
        if row is None:
            return []
        session.delete(row)
        return [Change("-", f"zero-retention attestation {tenant.slug}")]
    said = f"by {want.attested_by} on {want.attested_at.isoformat()}"
    if row is None:
        session.add(
            ZeroRetentionAttestation(
                tenant_id=tenant.id, attested_by=want.attested_by, attested_at=want.attested_at
            )
        )
        return [Change("+", f"zero-retention attestation {tenant.slug} {said}")]
    if (row.attested_by, row.attested_at) == (want.attested_by, want.attested_at):
        return []
    row.attested_by, row.attested_at = want.attested_by, want.attested_at
    return [Change("~", f"zero-retention attestation {tenant.slug} {said}")]


def _otlp_token(session: Session, tenant: Tenant, root: TenantSpec | None) -> list[Change]:
    row = session.get(OtlpToken, tenant.id)
    want = root.otlp_token if root is not None else None
    if want is None:
        if row is None:
            return []
        session.delete(row)
        return [Change("-", f"otlp token {tenant.slug}")]
    if row is None:
        session.add(OtlpToken(tenant_id=tenant.id, token_ref=want))
        return [Change("+", f"otlp token {tenant.slug}: {want}")]
    if row.token_ref == want:
        return []
    row.token_ref = want
    return [Change("~", f"otlp token {tenant.slug}: {want}")]


def _claude_code_settings(
    session: Session, tenant: Tenant, root: TenantSpec | None
) -> list[Change]:
    """The opt-in of `otlp:`; the row outlives it while settings we wrote remain (`owned`), so
    that `otlp configure` can still remove them."""
    row = session.get(ClaudeCodeSettings, tenant.id)
    want = root.otlp if root is not None else None
    manage = bool(want and want.manage_claude_code_settings)
    endpoint = want.endpoint if want is not None else None
    said = f"{'managed' if manage else 'not managed'}, endpoint {endpoint or '-'}"
    if row is None:
        if want is None:
            return []
        session.add(ClaudeCodeSettings(tenant_id=tenant.id, manage=manage, endpoint=endpoint))
        return [Change("+", f"claude code settings {tenant.slug}: {said}")]
    if want is None and not row.owned:
        session.delete(row)
        return [Change("-", f"claude code settings {tenant.slug}")]
    if (row.manage, row.endpoint) == (manage, endpoint):
        return []
    row.manage, row.endpoint = manage, endpoint
    return [Change("~", f"claude code settings {tenant.slug}: {said}")]


def _workspaces(session: Session, config: TenantsFile, tenants: dict[str, Tenant]) -> list[Change]:
    want: dict[tuple[str, str], tuple[Tenant, str | None]] = {}
    for _, spec, root in config.entries():
        for ws in spec.workspaces:
            want[(root.org_id, ws.id)] = (tenants[spec.slug], ws.name)
    managed = {tenants[spec.slug].id for _, spec, _ in config.entries()}
    changes: list[Change] = []
    have: dict[tuple[str, str], WorkspaceMapping] = {}
    for m in session.scalars(select(WorkspaceMapping)):
        key = (m.org_id, m.workspace_id)
        if key in want:
            have[key] = m
        elif m.tenant_id in managed:
            session.delete(m)
            changes.append(Change("-", f"workspace {m.org_id}/{m.workspace_id} -> {m.tenant.slug}"))
    session.flush()
    for (org, ws_id), (tenant, name) in want.items():
        held = have.get((org, ws_id))
        if held is None:
            session.add(
                WorkspaceMapping(
                    org_id=org, workspace_id=ws_id, workspace_name=name, tenant_id=tenant.id
                )
            )
            changes.append(Change("+", f"workspace {org}/{ws_id} -> {tenant.slug}"))
            continue
        m = held
        if m.tenant_id != tenant.id:
            changes.append(
                Change("~", f"workspace {org}/{ws_id}: {m.tenant.slug} -> {tenant.slug}")
            )
            m.tenant_id = tenant.id
        if m.workspace_name != name:
            changes.append(
                Change("~", f"workspace {org}/{ws_id} name: {m.workspace_name} -> {name}")
            )
            m.workspace_name = name
    return changes


def _archetypes(session: Session, tenant: Tenant, spec: SubTenantSpec) -> list[Change]:
    have = {
        a.slug: a
        for a in session.scalars(select(Archetype).where(Archetype.tenant_id == tenant.id))
    }
    changes: list[Change] = []
    wanted = {a.slug for a in spec.archetypes}
    for slug, old in have.items():
        if slug not in wanted:
            session.delete(old)  # its grants go with it
            changes.append(Change("-", f"archetype {tenant.slug}/{slug}"))
    for want in spec.archetypes:
        name = f"{tenant.slug}/{want.slug}"
        found = have.get(want.slug)
        if found is None:
            arch = Archetype(
                tenant_id=tenant.id,
                slug=want.slug,
                rbac_group_id=want.rbac_group,
                installation_preference=want.installation,
            )
            session.add(arch)
            changes.append(Change("+", f"archetype {name} ({want.rbac_group})"))
        else:
            arch = found
        if arch.installation_preference != want.installation:
            changes.append(
                Change(
                    "~",
                    f"archetype {name} installation: {arch.installation_preference} -> "
                    f"{want.installation}",
                )
            )
            arch.installation_preference = want.installation
        if arch.rbac_group_id != want.rbac_group:
            changes.append(
                Change(
                    "~", f"archetype {name} rbac group: {arch.rbac_group_id} -> {want.rbac_group}"
                )
            )
            arch.rbac_group_id = want.rbac_group
        granted = {g.skill_id: g for g in arch.grants}
        for skill_id, grant in granted.items():
            if skill_id not in want.grants:
                arch.grants.remove(grant)
                changes.append(Change("-", f"grant {name} -> {skill_id}"))
        for skill_id in want.grants:
            if skill_id not in granted:
                arch.grants.append(SkillGrant(skill_id=skill_id))
                changes.append(Change("+", f"grant {name} -> {skill_id}"))
    return changes
