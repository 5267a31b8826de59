"""`claresia-sync tenants ...`: declarative tenant configuration."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy.orm import Session

from claresia_sync.cli.output import console, print_json
from claresia_sync.config import load_settings
from claresia_sync.db import open_database
from claresia_sync.telemetry.quarantine import replay_quarantine
from claresia_sync.tenancy import TenantConfigError, apply_tenants, list_tenants, load_tenants

tenants_app = typer.Typer(help="Tenants, workspaces, archetypes and grants.", no_args_is_help=True)


@tenants_app.command("apply")
def apply_cmd(
    file: Annotated[Path, typer.Argument(help="Tenant file (see deploy/tenants.example.yaml).")],
    prune: Annotated[
        bool, typer.Option("--prune", help="Also remove tenants that the file does not list.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the changes without making them.")
    ] = False,
) -> None:
    """Make the database match the file (idempotent; prints what changed)."""
    try:
        config = load_tenants(file)
        settings = load_settings()
        with open_database(settings) as engine, Session(engine) as session:
            changes = apply_tenants(session, config, source=str(file), prune=prune)
            if dry_run:
                session.rollback()
            else:
                session.commit()
                # Events quarantined for an unmapped workspace are attributed once it is mapped.
                replayed = replay_quarantine(engine, settings=settings.telemetry) if changes else []
    except TenantConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        raise
    for change in changes:
        print(change)
    verb = "would change" if dry_run else "changed"
    if changes:
        print(f"{file}: {verb} {len(changes)} item(s)")
    else:
        print(f"{file}: no changes (the database already matches)")
    if not dry_run and any(r.attributed for r in replayed):
        for r in replayed:
            print(f"quarantine of {r.org_id}: {r.attributed} event(s) now attributed")


@tenants_app.command("list")
def list_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
) -> None:
    """Show tenants with their organisation, workspaces and archetypes."""
    with open_database(load_settings()) as engine, Session(engine) as session:
        rows = list_tenants(session)
    if as_json:
        print_json({"tenants": [dataclasses.asdict(r) for r in rows]})
        return
    if not rows:
        print("no tenants: add them with `claresia-sync tenants apply FILE.yaml`")
        return
    table = Table("tenant", "name", "parent", "org", "workspaces", "archetypes", "grants")
    for r in rows:
        table.add_row(
            r.slug if r.parent_slug is None else f"  {r.slug}",
            r.display_name,
            r.parent_slug or "",
            r.org_id or "",
            ", ".join(r.workspace_ids),
            ", ".join(r.archetypes),
            str(r.grants),
        )
    console().print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(tenants_app, name="tenants")
