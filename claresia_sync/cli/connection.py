"""`claresia-sync connection test`: the "Test connection" button of seeds/002."""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from claresia_sync.errors import ExitCode, UserError

if TYPE_CHECKING:
    from claresia_sync.api.connect import TenantConnection
    from claresia_sync.publish.targets import Grant

connection_app = typer.Typer(help="Check a tenant's Anthropic connection.", no_args_is_help=True)


@connection_app.command("test")
def test(
    tenant: Annotated[
        str | None,
        typer.Option(
            help="Tenant slug: its org, key reference and base URL; its workspaces and "
            "archetypes' rbac groups are checked against the organisation too."
        ),
    ] = None,
    base_url: Annotated[
        str | None, typer.Option(help="API base URL (instead of --tenant).")
    ] = None,
    key_ref: Annotated[
        str | None,
        typer.Option(help="Admin key reference env:NAME or file:PATH (instead of --tenant)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
) -> None:
    """Print organisation name, workspace count and zero-retention status (and, for a tenant,
    whether its workspaces and groups are usable); exit 3 with what to do when a check fails."""
    from claresia_sync.api.connect import TenantConnection
    from claresia_sync.cli.output import print_json
    from claresia_sync.connection_check import check_tenant_connection
    from claresia_sync.publish.targets import ORG_SKILLS

    needs = None
    if tenant is not None:
        if base_url is not None or key_ref is not None:
            raise UserError("give either --tenant or --base-url/--key-ref, not both")
        targets, needs, groups = _tenant_targets(tenant)
        if targets[0].target != ORG_SKILLS.name:  # its check is `connection_check`'s
            _test_real_targets(targets, groups, as_json)
            return
        conn = targets[0]
        if len(targets) > 1:
            _test_real_targets(targets[1:], groups, as_json, also=(conn, needs))
            return
    elif key_ref is None:
        raise UserError("give --tenant T, or --key-ref env:NAME (and optionally --base-url URL)")
    else:
        conn = TenantConnection.ad_hoc(key_ref, base_url)
    report = asyncio.run(check_tenant_connection(conn, needs))
    if as_json:
        print_json(report.to_json())
    else:
        for line in report.lines():
            print(line)
    _verdict(list(report.problems), as_json)


def _tenant_targets(tenant: str) -> tuple[list[TenantConnection], Grant, dict[str, str]]:
    """The targets of a tenant (a sub-tenant uses its parent's: org-skills first), the
    workspaces and rbac groups of the tenant and its sub-tenants, which they must be able to
    use, and each archetype's group (`tenant/archetype` -> group)."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from claresia_sync.config import load_settings
    from claresia_sync.db import open_database
    from claresia_sync.db.models import Archetype, Tenant
    from claresia_sync.publish.targets import Grant
    from claresia_sync.tenancy import workspaces_and_groups
    from claresia_sync.tenancy.lookup import require_tenant, tenant_targets

    with open_database(load_settings()) as engine, Session(engine) as session:
        workspaces, groups = workspaces_and_groups(session, tenant)
        found = require_tenant(session, tenant)
        root = found.parent or found
        rows = session.execute(
            select(Tenant.slug, Archetype.slug, Archetype.rbac_group_id)
            .join(Archetype, Archetype.tenant_id == Tenant.id)
            .where((Tenant.id == root.id) | (Tenant.parent_id == root.id))
        )
        by_archetype = {f"{t}/{a}": g for t, a, g in rows}
        return (
            tenant_targets(session, tenant),
            Grant(tuple(workspaces), tuple(groups)),
            by_archetype,
        )


def _test_real_targets(
    targets: list[TenantConnection],
    groups: dict[str, str],
    as_json: bool,
    also: tuple[TenantConnection, Grant] | None = None,
) -> None:
    """Each target of a tenant on the real targets (and its org-skills connection, `also`)."""
    from claresia_sync.cli.output import print_json
    from claresia_sync.connection_check import check_tenant_connection
    from claresia_sync.publish.targets import ORG_SKILLS
    from claresia_sync.target_check import check_targets

    async def run() -> tuple[Any, list[Any]]:
        first = await check_tenant_connection(*also) if also else None
        return first, await check_targets(targets, groups)

    first, reports = asyncio.run(run())
    problems = list(first.problems) if first is not None else []
    for r in reports:
        problems += r.problems
    if as_json:
        out = [r.to_json() for r in reports]
        if first is not None:
            out.insert(0, {"target": ORG_SKILLS.name, **first.to_json()})
        print_json({"targets": out, "ok": not problems})
    else:
        if first is not None:
            print(f"[{ORG_SKILLS.name}]")
            for line in first.lines():
                print(f"  {line}")
        for r in reports:
            print(f"[{r.target}] {r.where}")
            for line in r.lines:
                print(f"  {line}")
            for warning in r.warnings:
                print(f"  Warning:        {warning}")
    _verdict(problems, as_json)


def _verdict(problems: list[str], as_json: bool) -> None:
    """The exit of every connection test: the first problem as the one-line error (exit 3), the
    others on stderr; "Connection OK" when there is none."""
    for extra in problems[1:]:
        print(f"also: {extra}", file=sys.stderr)
    if problems:
        raise UserError(problems[0], exit_code=ExitCode.FAILURES)
    if not as_json:
        print("Connection OK")


def register(app: typer.Typer) -> None:
    app.add_typer(connection_app, name="connection")
