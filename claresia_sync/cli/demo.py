"""`claresia-sync demo`: the whole system once, against the emulator."""

from __future__ import annotations

from typing import Annotated

import typer

from claresia_sync.config import load_settings


def demo_command(
    invocations: Annotated[
        int, typer.Option(min=1, max=100_000, help="Simulated invocations per organisation.")
    ] = 250,
    serve: Annotated[
        bool,
        typer.Option(
            "--serve",
            help="Then keep the Command Center (and the daemon) up on the demo's database and "
            "emulator, printing its URL and a demo token, until Ctrl-C.",
        ),
    ] = False,
) -> None:
    """Embedded PostgreSQL + emulator: import, configure, publish, then every telemetry source
    (audit poll, skills analytics, activity feed, Claude Code's OTLP export), report."""
    from claresia_sync.cli.output import console
    from claresia_sync.demo import run_demo

    run_demo(load_settings(), console(), invocations=invocations, serve=serve)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)
