"""`claresia-sync center`: the Command Center (operator API and console) without the daemon.

`claresia-sync run` serves it too, beside its work, when tokens are configured; this command is
for a host that only needs the console, and for trying it out. Jobs it queues are run by the
daemons (`run`)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from claresia_sync.config import Settings, flag_help, use_settings
from claresia_sync.db import open_database
from claresia_sync.db.migrate import SchemaMissing, schema_behind


def center_command(
    host: Annotated[
        str | None, typer.Option("--host", help=flag_help("center_host"), show_default=False)
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", help=flag_help("center_port"), show_default=False)
    ] = None,
) -> None:
    """Serve the Command Center (API, OpenAPI document, console) until SIGTERM or ^C."""
    from claresia_sync.center.app import serve_alone

    settings = use_settings(Settings.load({"center_host": host, "center_port": port}))
    with open_database(settings) as engine:
        with engine.connect() as conn:
            behind = schema_behind(conn)
        if behind:
            raise SchemaMissing(behind)
        asyncio.run(serve_alone(engine, settings))


def register(app: typer.Typer) -> None:
    app.command("center")(center_command)
