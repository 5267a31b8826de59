"""`claresia-sync catalog ...`: check Skill IR files (and, with the database, import them)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from claresia_sync.errors import UserError
from claresia_sync.ir import Problem, load_catalog

catalog_app = typer.Typer(help="Validate and import the Skill IR catalog.", no_args_is_help=True)


def report_problems(problems: list[Problem]) -> None:
    for problem in problems:
        print(problem, file=sys.stderr)


@catalog_app.command("validate")
def validate(
    paths: Annotated[list[Path], typer.Argument(help="IR files or folders of *.json files.")],
) -> None:
    """Check IR files against docs/interfaces.md section 1 and list every problem of every file."""
    result = load_catalog(paths)
    report_problems(result.problems)
    if result.problems:
        files = len({p.file for p in result.problems})
        raise UserError(
            f"{len(result.problems)} problem(s) in {files} file(s); "
            f"{len(result.skills)} skill(s) valid"
        )
    print(f"{len(result.skills)} skill(s) valid")


SHIPPED = {
    "catalog": "skills_ir/catalog",
    "tenants-example": "deploy/tenants.example.yaml",
    "emulator-seed": "deploy/emulator.seed.yaml",
}


@catalog_app.command("path")
def path_cmd(
    what: Annotated[
        str, typer.Argument(help=f"One of: {', '.join(SHIPPED)}.", show_default=True)
    ] = "catalog",
) -> None:
    """Print where this installation keeps a file it ships (a wheel install keeps the example
    catalog inside the package: `catalog import "$(claresia-sync catalog path)"`)."""
    from claresia_sync.resources import shipped

    if what not in SHIPPED:
        raise UserError(f"catalog path {what!r}: give one of {', '.join(SHIPPED)}")
    print(shipped(SHIPPED[what]))


def register(app: typer.Typer) -> None:
    app.add_typer(catalog_app, name="catalog")
