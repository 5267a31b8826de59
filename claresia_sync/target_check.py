"""`connection test --tenant T` for the real targets (claude-enterprise, claude-api).

Per target, read-only: the organisation name; where the zero-retention answer comes from (the
tenants file's attestation: no API reports it); for claude-enterprise, the Plugins API reachable
(beta header, Enterprise organisation), the read scopes verified and the missing ones named, and
each archetype's rbac group found or named as missing; for claude-api, each workspace API key
valid and belonging to its workspace (every request names the workspace), with the warning that
the Skills API is not eligible for zero data retention.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from claresia_sync.api.connect import CLAUDE_API, ConnectionKeyError, TenantConnection
from claresia_sync.api.errors import ZERO_RETENTION_HINT
from claresia_sync.api.retry import Backoff
from claresia_sync.api.sdk import SdkFailure
from claresia_sync.publish.targets.base import TargetError
from claresia_sync.publish.targets.claude_api import CLAUDE_API_KIND, ZDR_WARNING, ClaudeApiTarget
from claresia_sync.publish.targets.claude_enterprise import (
    CLAUDE_ENTERPRISE_KIND,
    R_PLUGINS,
    SCOPES,
    ClaudeEnterpriseTarget,
)

TEST_ATTEMPTS = 2  # interactive: answer within seconds


@dataclass
class TargetReport:
    target: str
    """`TenantConnection.target_key`."""
    where: str
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "where": self.where,
            "lines": self.lines,
            "warnings": self.warnings,
            "problems": self.problems,
            "ok": not self.problems,
        }


def _zero_retention(conn: TenantConnection, report: TargetReport) -> None:
    if conn.zero_retention is None:
        report.lines.append("Zero retention: NOT attested (no API reports it)")
        report.problems.append(
            f"{conn.describe()}: zero-retention not attested — {ZERO_RETENTION_HINT}, then record "
            "it in the tenants file as `zero_retention: {attested_by, attested_at}`"
        )
    else:
        report.lines.append(f"Zero retention: {conn.zero_retention}; no API reports it")


def _scope_named(exc: TargetError) -> str | None:
    found = re.search(r"(write|read):[a-z_]+", str(exc))
    return found.group(0) if found else None


async def check_enterprise(conn: TenantConnection, groups: dict[str, str]) -> TargetReport:
    """`groups`: archetype (tenant/slug) -> its rbac group id."""
    report = TargetReport(conn.target_key, f"{conn.base_url}, organisation {conn.org_id}")
    try:
        target = CLAUDE_ENTERPRISE_KIND.open(conn)
    except ConnectionKeyError as exc:
        report.problems.append(str(exc))
        return report
    target.caller.retry = Backoff(TEST_ATTEMPTS)
    report.lines.append(
        f"API:            {conn.base_url} (Enterprise admin key {target.caller.key_hint})"
    )
    try:
        await _enterprise(target, conn, groups, report)
    finally:
        await target.aclose()
    return report


async def _enterprise(
    target: ClaudeEnterpriseTarget,
    conn: TenantConnection,
    groups: dict[str, str],
    report: TargetReport,
) -> None:
    try:
        name = await target.organization_name()
    except TargetError as exc:
        report.problems.append(f"{exc}" + (f" — {exc.hint}" if exc.hint else ""))
        return
    report.lines.append(f"Organisation:   {name} ({conn.org_id})")
    _zero_retention(conn, report)
    verified: list[str] = []
    missing: list[str] = []
    plugins = target.caller.sdk.beta.organization.plugins
    try:
        await target.caller.call(
            "GET", R_PLUGINS, "GET /v1/organizations/plugins", lambda: plugins.list(limit=1)
        )
        report.lines.append("Plugins API:    reachable (beta ce-plugins-2026-09-01)")
        verified.append("read:plugins")
    except SdkFailure as exc:
        if exc.status == 403:
            missing.append(_scope_named(exc) or "read:plugins")
        else:
            report.problems.append(f"{exc}" + (f" — {exc.hint}" if exc.hint else ""))
            return
    known: dict[str, str] | None = None
    try:
        known = await target.rbac_groups()
        verified.append("read:rbac_groups")
    except SdkFailure as exc:
        if exc.status != 403:
            raise
        missing.append(_scope_named(exc) or "read:rbac_groups")
    report.lines.append(
        f"Scopes:         {', '.join(verified) or 'none'} verified; write:plugins is checked "
        "at publish"
    )
    if missing:
        report.lines.append(f"Missing scopes: {', '.join(missing)}")
        report.problems.append(
            f"the Claude Enterprise admin key lacks the scope(s) {', '.join(missing)}: re-mint it "
            f"in claude.ai with the scopes {', '.join(SCOPES)}"
        )
    if known is None:
        return
    for archetype, group in sorted(groups.items()):
        if group in known:
            report.lines.append(f"RBAC group:     {archetype} -> {group} ({known[group]}) found")
        else:
            report.lines.append(f"RBAC group:     {archetype} -> {group} MISSING")
            report.problems.append(
                f"archetype {archetype}: rbac group {group} is not in organisation {conn.org_id}: "
                "fix its rbac_group in the tenants file"
            )


async def check_workspace(conn: TenantConnection) -> TargetReport:
    report = TargetReport(conn.target_key, f"{conn.base_url}, workspace {conn.workspace_id}")
    try:
        target: ClaudeApiTarget = CLAUDE_API_KIND.open(conn)
    except ConnectionKeyError as exc:
        report.problems.append(str(exc))
        return report
    target.caller.retry = Backoff(TEST_ATTEMPTS)
    report.lines.append(
        f"API:            {conn.base_url} (API key {target.caller.key_hint} of {conn.workspace_id})"
    )
    try:
        await target.caller.call(
            "GET", "/v1/skills", "GET /v1/skills", lambda: target.caller.sdk.skills.list(limit=1)
        )
        report.lines.append(f"Workspace:      {conn.workspace_id}: key valid and belongs to it")
    except TargetError as exc:
        report.problems.append(f"{conn.describe()}: {exc}" + (f" — {exc.hint}" if exc.hint else ""))
    finally:
        await target.aclose()
    _zero_retention(conn, report)
    report.warnings.append(f"{conn.workspace_id}: {ZDR_WARNING}")
    return report


async def check_targets(
    conns: list[TenantConnection], groups: dict[str, str]
) -> list[TargetReport]:
    """The reports of the real targets among `conns` (org-skills is `connection_check`'s)."""
    out = []
    for conn in conns:
        if conn.target == CLAUDE_API:
            out.append(await check_workspace(conn))
        elif conn.target == CLAUDE_ENTERPRISE_KIND.name:
            out.append(await check_enterprise(conn, groups))
    return out
