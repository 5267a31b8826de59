"""`claresia-sync transpile IR.json --tenant T --out DIR`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from claresia_sync.cli.catalog import report_problems
from claresia_sync.errors import UserError
from claresia_sync.ir import IRError, load_skill_file
from claresia_sync.naming import NamingError
from claresia_sync.transpile import transpile


def transpile_command(
    ir_file: Annotated[Path, typer.Argument(help="One Skill IR JSON file.", metavar="IR.json")],
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant slug, e.g. dainese.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the bundle and its JSON.")],
) -> None:
    """Write the SKILL.md bundle folder and the Claude skill JSON payload for one tenant."""
    try:
        skill = load_skill_file(ir_file)
        claude = transpile(skill.ir, tenant)
    except IRError as exc:
        report_problems(exc.problems)
        raise UserError(
            f"{ir_file} is not a valid skill ({len(exc.problems)} problem(s))"
        ) from None
    except NamingError as exc:
        raise UserError(str(exc)) from None
    folder = claude.write(out)
    print(f"{claude.name}: {folder}/ and {out / (claude.name + '.json')} ({claude.content_hash})")


def register(app: typer.Typer) -> None:
    app.command("transpile")(transpile_command)
