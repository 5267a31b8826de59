"""The `claresia-sync` command line: one Typer app, one module per command group."""

from __future__ import annotations

import logging
import sys

import typer

from claresia_sync.errors import UserError
from claresia_sync.logs import configure_logging

app = typer.Typer(
    name="claresia-sync",
    help="Publish Claresia skills into Anthropic organisations and ingest their telemetry.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    # Imported here so that each command group stays in its own module.
    from claresia_sync.cli import (
        catalog,
        catalog_import,
        connection,
        daemon,
        demo,
        emulator,
        publish,
        telemetry,
        tenants,
        transpile,
    )
    from claresia_sync.cli import db as db_cli

    for module in (
        demo,
        catalog,
        catalog_import,
        transpile,
        db_cli,
        tenants,
        connection,
        publish,
        telemetry,
        daemon,
        emulator,
    ):
        module.register(app)


def main() -> None:
    """Console entry point: exit 0 on success, non-zero with a one-line reason on stderr."""
    configure_logging("console", logging.WARNING)  # `run` switches to JSON lines
    _register()
    try:
        app()  # click's standalone mode handles usage errors (exit 2) and ^C itself
    except UserError as exc:
        print(f"claresia-sync: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
