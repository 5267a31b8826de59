"""`claresia-sync connection test`: the "Test connection" button of seeds/002."""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, Annotated

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

    needs = None
    if tenant is not None:
        if base_url is not None or key_ref is not None:
            raise UserError("give either --tenant or --base-url/--key-ref, not both")
        conn, needs = _tenant_connection(tenant)
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
    problems = list(report.problems)
    for extra in problems[1:]:
        print(f"also: {extra}", file=sys.stderr)
    if problems:
        raise UserError(problems[0], exit_code=ExitCode.FAILURES)
    if not as_json:
        print("Connection OK")


def _tenant_connection(tenant: str) -> tuple[TenantConnection, Grant]:
    """The connection of a tenant (a sub-tenant uses its parent's), and the workspaces and
    rbac groups of the tenant and its sub-tenants, which that connection must be able to use."""
    from sqlalchemy.orm import Session

    from claresia_sync.db import open_database
    from claresia_sync.publish.targets import Grant
    from claresia_sync.tenancy import get_connection, workspaces_and_groups

    with open_database() as engine, Session(engine) as session:
        workspaces, groups = workspaces_and_groups(session, tenant)
        return get_connection(session, tenant), Grant(tuple(workspaces), tuple(groups))


def register(app: typer.Typer) -> None:
    app.add_typer(connection_app, name="connection")
