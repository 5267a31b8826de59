"""`claresia-sync otlp configure`: point a tenant's Claude Code at the OTLP receiver through the
managed-settings API (the opt-in `otlp.manage_claude_code_settings`; docs/claude-code.md)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from claresia_sync.config import load_settings
from claresia_sync.db import open_database
from claresia_sync.errors import ExitCode

otlp_app = typer.Typer(
    help="Claude Code's OpenTelemetry export to the receiver.", no_args_is_help=True
)


@otlp_app.command("configure")
def configure_cmd(
    tenant: Annotated[str, typer.Option(help="A root tenant on claude-enterprise.")],
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Show each group's change (token masked); write nothing."),
    ] = False,
) -> None:
    """Set (opt-in on) or remove (off) our Claude Code telemetry settings in the managed settings
    of the tenant's archetypes' rbac groups, keeping every other setting; one line per group."""
    from claresia_sync.publish.claude_code_settings import configure_tenant

    with open_database(load_settings()) as engine:
        result = asyncio.run(configure_tenant(engine, tenant, dry_run=dry_run))
    for line in result.lines:
        print(line)
    if result.failed:
        raise typer.Exit(ExitCode.FAILURES)


def register(app: typer.Typer) -> None:
    app.add_typer(otlp_app, name="otlp")
