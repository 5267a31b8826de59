"""The `claresia-sync` command line: one Typer app, one module per command group."""

from __future__ import annotations

import logging
import sys

import typer
from psycopg import errors as pg_errors
from sqlalchemy.exc import DBAPIError

from claresia_sync.config import read_once
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
        config,
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
        config,
        telemetry,
        daemon,
        emulator,
    ):
        module.register(app)


def main() -> None:
    """Console entry point: exit 0 on success, non-zero with a one-line reason on stderr."""
    configure_logging("console", logging.WARNING)  # `run` switches to JSON lines
    read_once()  # one settings object per process (claresia_sync.config)
    _register()
    try:
        app()  # click's standalone mode handles usage errors (exit 2) and ^C itself
    except UserError as exc:
        print(f"claresia-sync: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except DBAPIError as exc:
        print(f"claresia-sync: error: {describe_database_failure(exc)}", file=sys.stderr)
        sys.exit(1)


def describe_database_failure(exc: DBAPIError) -> str:
    """One line for a database error that reached the top (the connection is checked when a
    command starts, so this is a schema that is not there or a server lost mid-command)."""
    reason = " ".join(str(exc.orig or exc).split())[:300]
    if isinstance(exc.orig, pg_errors.UndefinedTable | pg_errors.UndefinedColumn):
        from claresia_sync.db.migrate import SchemaMissing  # alembic: only when needed

        return str(SchemaMissing(reason))
    # Every step commits in its own transaction, so what was committed stays valid.
    return (
        f"the database failed during the command: {reason}; what was committed stays, run "
        "the command again once the database is back"
    )
