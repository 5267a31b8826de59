"""The check behind `connection test` (seeds/002, "Test connection").

It calls `GET /v1/organizations/me` for the organisation name, workspace count and zero-retention
status, then probes the read scopes with one small read each (workspaces, skills, audit log).
For a tenant it then runs the publisher's own pre-flight (the target's `access_check`): every
workspace mapped to the tenant and every archetype's rbac group must be in the organisation
and within the key's reach. It never writes: `skills:write` is proven by the first publish,
whose 403 names the scope. Every problem comes back as the operator message of seeds/002.
"""

from __future__ import annotations

from contextlib import aclosing
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import httpx2

from claresia_sync.api.client import OrgClient
from claresia_sync.api.connect import TenantConnection, open_client
from claresia_sync.api.errors import (
    REQUIRED_SCOPES,
    ZERO_RETENTION_HINT,
    APIError,
    PermissionDeniedError,
)
from claresia_sync.publish.targets import ORG_SKILLS, Grant, OrgSkillsTarget


@dataclass(frozen=True)
class ConnectionReport:
    base_url: str
    key: str  # "…abcd": the last 4 chars only
    organization_id: str | None = None
    organization_name: str | None = None
    workspace_count: int | None = None
    zero_data_retention: bool | None = None
    verified_scopes: tuple[str, ...] = ()
    missing_scopes: tuple[str, ...] = ()
    access_checked: Grant | None = None
    """The tenant's workspaces and groups that the pre-flight checked (None: not checked)."""
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        """What `connection test` prints (problems go to stderr separately)."""
        out = [f"API:            {self.base_url} (admin key {self.key})"]
        if self.organization_name is not None:
            out.append(f"Organisation:   {self.organization_name} ({self.organization_id})")
            out.append(f"Workspaces:     {self.workspace_count}")
            zdr = "enabled" if self.zero_data_retention else "NOT enabled"
            out.append(f"Zero retention: {zdr} (reported by GET /v1/organizations/me)")
        if self.verified_scopes or self.missing_scopes:
            scopes = ", ".join(self.verified_scopes) or "none"
            out.append(f"Scopes:         {scopes} verified; skills:write is checked at publish")
        if self.missing_scopes:
            out.append(f"Missing scopes: {', '.join(self.missing_scopes)}")
        if self.access_checked is not None:
            grant = self.access_checked
            out.append(
                f"Tenant access:  {len(grant.workspace_ids)} workspace(s), "
                f"{len(grant.rbac_group_ids)} rbac group(s) checked against the organisation"
            )
        return out

    def to_json(self) -> dict[str, Any]:
        """`connection test --json`: every field, and `ok`."""
        out = asdict(self)
        out["access_checked"] = None if self.access_checked is None else asdict(self.access_checked)
        out["ok"] = self.ok
        return out


# A connection test is interactive: fail within seconds rather than the daemon's retry budget.
TEST_TIMEOUT = 15.0
TEST_ATTEMPTS = 3


async def check_tenant_connection(
    conn: TenantConnection, needs: Grant | None = None, *, http: httpx2.AsyncClient | None = None
) -> ConnectionReport:
    """Test a tenant's (or an ad hoc) connection, and with `needs` (the tenant's workspaces and
    groups) the pre-flight of its access; `ConnectionKeyError` when its key reference cannot be
    resolved, never an exception for API errors."""
    client = open_client(conn, http=http, timeout=TEST_TIMEOUT, max_attempts=TEST_ATTEMPTS)
    async with client:
        report = await check_client(client, conn)
        if needs is None or report.organization_id != conn.org_id:
            return report  # nothing asked, or the key's organisation is already the problem
        return await _check_access(OrgSkillsTarget(client, conn), needs, report)


async def _check_access(
    target: OrgSkillsTarget, needs: Grant, report: ConnectionReport
) -> ConnectionReport:
    """The publisher's pre-flight on the tenant's whole access (one line per problem)."""
    check = await target.access_check()
    refused = check(ORG_SKILLS.desired_access(needs))
    problems = report.problems + ((refused,) if refused else ())
    return _with(report, access_checked=needs, problems=problems)


async def check_client(client: OrgClient, conn: TenantConnection) -> ConnectionReport:
    """The checks on an open client; `conn.org_id`, when known, must be the key's organisation."""
    report = ConnectionReport(base_url=client.base_url, key=client.key_hint)
    try:
        org = await client.get_organization()
    except APIError as exc:
        return _with(report, problems=(exc.hint,))
    verified, missing, problems = await _probe_scopes(client, org.id)
    if missing:
        problems.insert(
            0,
            f"the admin key lacks the scope(s) {', '.join(missing)}: re-mint it with the scopes "
            f"{', '.join(REQUIRED_SCOPES)}",
        )
    if not org.zero_data_retention:
        problems.insert(0, f"Zero-retention not enabled: {ZERO_RETENTION_HINT}")
    if conn.org_id and org.id != conn.org_id:
        problems.insert(
            0,
            f"the admin key of tenant {conn.tenant_slug!r} belongs to {org.id}, not to "
            f"{conn.org_id}: paste the key of the right organisation",
        )
    return _with(
        report,
        organization_id=org.id,
        organization_name=org.name,
        workspace_count=org.workspace_count,
        zero_data_retention=org.zero_data_retention,
        verified_scopes=tuple(verified),
        missing_scopes=tuple(missing),
        problems=tuple(problems),
    )


async def _probe_scopes(client: OrgClient, org_id: str) -> tuple[list[str], list[str], list[str]]:
    """(verified scopes, missing scopes, other problems) from one small read per read scope."""
    verified: list[str] = []
    missing: list[str] = []
    for scope in ("workspaces:read", "skills:read", "audit:read"):
        try:
            await _probe(client, scope, org_id)
            verified.append(scope)
        except PermissionDeniedError as exc:
            missing.append(exc.missing_scope or scope)
        except APIError as exc:
            return verified, missing, [exc.hint]
    return verified, missing, []


async def _probe(client: OrgClient, scope: str, org_id: str) -> None:
    """One small read that needs `scope`."""
    if scope == "workspaces:read":
        async with aclosing(client.list_workspaces(page_size=1)) as workspaces:
            async for _ in workspaces:
                break
    elif scope == "skills:read":
        async with aclosing(client.list_skills(org_id, page_size=1)) as skills:
            async for _ in skills:
                break
    else:
        await client.audit_events(org_id, limit=1)


def _with(report: ConnectionReport, **changes: object) -> ConnectionReport:
    return replace(report, **changes)  # type: ignore[arg-type]
