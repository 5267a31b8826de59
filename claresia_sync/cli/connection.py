"""`claresia-sync connection test`: the "Test connection" button of seeds/002."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import typer

from claresia_sync.errors import UserError

connection_app = typer.Typer(help="Check a tenant's Anthropic connection.", no_args_is_help=True)


@connection_app.command("test")
def test(
    tenant: Annotated[
        str | None, typer.Option(help="Tenant slug: its org, key reference and base URL.")
    ] = None,
    base_url: Annotated[
        str | None, typer.Option(help="API base URL (instead of --tenant).")
    ] = None,
    key_ref: Annotated[
        str | None,
        typer.Option(help="Admin key reference env:NAME or file:PATH (instead of --tenant)."),
    ] = None,
) -> None:
    """Print organisation name, workspace count and zero-retention status; exit non-zero with
    what to do when something is wrong."""
    from claresia_sync.api.client import DEFAULT_BASE_URL
    from claresia_sync.connection_check import check_connection
    from claresia_sync.secrets import KeyReferenceError, resolve_key

    if tenant is not None:
        if base_url is not None or key_ref is not None:
            raise UserError("give either --tenant or --base-url/--key-ref, not both")
        base_url, key_ref, expected_org = _tenant_connection(tenant)
    elif key_ref is None:
        raise UserError("give --tenant T, or --key-ref env:NAME (and optionally --base-url URL)")
    else:
        expected_org = None
    try:
        key = resolve_key(key_ref)
    except KeyReferenceError as exc:
        raise UserError(str(exc)) from None
    report = asyncio.run(check_connection(base_url or DEFAULT_BASE_URL, key))
    for line in report.lines():
        print(line)
    problems = list(report.problems)
    if expected_org and report.organization_id and report.organization_id != expected_org:
        problems.insert(
            0,
            f"the admin key of tenant {tenant!r} belongs to {report.organization_id}, not to "
            f"{expected_org}: paste the key of the right organisation",
        )
    for extra in problems[1:]:
        print(f"also: {extra}", file=sys.stderr)
    if problems:
        raise UserError(problems[0])
    print("Connection OK")


def _tenant_connection(tenant: str) -> tuple[str, str, str]:
    """(base URL, key reference, org id) of a tenant (a sub-tenant uses its parent's)."""
    from sqlalchemy.orm import Session

    from claresia_sync.db import open_database
    from claresia_sync.tenancy import get_connection

    with open_database() as engine, Session(engine) as session:
        conn = get_connection(session, tenant)
    return conn.base_url, conn.admin_key_ref, conn.org_id


def register(app: typer.Typer) -> None:
    app.add_typer(connection_app, name="connection")
