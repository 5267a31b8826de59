"""The `claresia-sync` command line: one Typer app, one module per command group."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer
from psycopg import errors as pg_errors
from sqlalchemy.exc import DBAPIError

from claresia_sync import __version__
from claresia_sync.config import read_once
from claresia_sync.errors import ExitCode, UserError
from claresia_sync.logs import configure_logging

app = typer.Typer(
    name="claresia-sync",
    help="Publish Claresia skills into Anthropic organisations and ingest their telemetry.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # plain help: never boxed or cut at 80 columns in a pipe
    context_settings={"help_option_names": ["-h", "--help"]},  # inherited by every command
    epilog=(
        "Exit codes: 0 success; 1 error (input, configuration, database, API); 2 usage "
        "(unknown command or flag, bad flag value); 3 the work ran but some of it failed."
    ),
)


def _show_version(value: bool) -> None:
    if value:
        print(f"claresia-sync {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_show_version, help="Print the version, exit."
        ),
    ] = False,
) -> None:
    """Options of the program itself (the commands are registered by `_register`)."""


def _register() -> None:
    # Imported here so that each command group stays in its own module.
    from claresia_sync.cli import (
        catalog,
        catalog_import,
        center,
        config,
        connection,
        daemon,
        demo,
        emulator,
        jobs,
        otlp,
        publish,
        release,
        rollout,
        skill,
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
        release,
        rollout,
        skill,
        config,
        jobs,
        telemetry,
        otlp,
        daemon,
        emulator,
        center,
    ):
        module.register(app)


def main() -> None:
    """Console entry point: exit 0 on success, non-zero with a one-line reason on stderr."""
    configure_logging("console", logging.WARNING)  # `run` switches to JSON lines
    read_once()  # one settings object per process (claresia_sync.config)
    _register()
    try:
        # errors are ours to print, one line each; the name is the same under `python -m`
        code = app(standalone_mode=False, prog_name="claresia-sync")
    except typer.TyperException as exc:  # click's errors: usage (exit 2), a bad file argument
        if line := describe_click_error(exc):
            print(line, file=sys.stderr)
        sys.exit(exc.exit_code)
    except typer.Abort:  # end of input at a prompt
        print("claresia-sync: aborted", file=sys.stderr)
        sys.exit(ExitCode.ERROR)
    except UserError as exc:
        print(f"claresia-sync: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except DBAPIError as exc:
        print(f"claresia-sync: error: {describe_database_failure(exc)}", file=sys.stderr)
        sys.exit(ExitCode.ERROR)
    sys.exit(code if isinstance(code, int) else ExitCode.OK)


def describe_click_error(exc: typer.TyperException) -> str:
    """Click's usage errors as one line naming the command's help (`no_args_is_help`: the help
    itself, which is what an operator typing the bare command wants)."""
    message = exc.format_message()
    ctx = getattr(exc, "ctx", None)
    if not message.strip() and ctx is not None:
        message = ctx.get_help()  # the rich help prints itself and returns ""
    if not message.strip() or "\n" in message.strip():
        return message.rstrip()
    where = f" (see `{ctx.command_path} -h`)" if ctx is not None else ""
    return f"claresia-sync: error: {' '.join(message.split())}{where}"


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
