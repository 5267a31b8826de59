"""`claresia-sync catalog import PATH...`: load IR files into the database catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from claresia_sync.catalog_store import import_catalog
from claresia_sync.cli.catalog import catalog_app, report_problems
from claresia_sync.config import load_settings
from claresia_sync.db import open_database
from claresia_sync.errors import UserError
from claresia_sync.ir import load_catalog


def import_cmd(
    paths: Annotated[list[Path], typer.Argument(help="IR files or folders of *.json files.")],
    by: Annotated[
        str | None, typer.Option("--by", help="Who makes the release (default: the OS user).")
    ] = None,
    note: Annotated[str | None, typer.Option("--note", help="Why: kept with the release.")] = None,
    hold: Annotated[
        bool,
        typer.Option(
            "--hold",
            help="Do not make the new release current (tenants stay where they are; "
            "`release current N` later).",
        ),
    ] = False,
) -> None:
    """Import valid skills (new or changed IR) into the catalog; report every invalid file. A
    changed catalog makes a numbered release, current unless --hold (docs/releases.md)."""
    loaded = load_catalog(paths)
    report_problems(loaded.problems)
    with open_database(load_settings()) as engine, Session(engine) as session:
        result = import_catalog(session, loaded.skills, by=by, note=note, hold=hold)
        session.commit()
    for verb, ids in (("added", result.added), ("updated", result.updated)):
        for skill_id in ids:
            print(f"{verb} {skill_id}")
    summary = (
        f"{len(result.added)} added, {len(result.updated)} updated, "
        f"{len(result.unchanged)} unchanged"
    )
    if result.release is not None:
        held = " (held: not current)" if result.release != result.current else " (current)"
        print(f"release {result.release}{held}")
    if loaded.problems:
        files = len({p.file for p in loaded.problems})
        raise UserError(
            f"{summary}; {len(loaded.problems)} problem(s) in {files} file(s) were not imported"
        )
    print(summary)


def register(app: typer.Typer) -> None:
    # `catalog` itself is registered by cli/catalog.py; this adds its `import` command.
    catalog_app.command("import")(import_cmd)
