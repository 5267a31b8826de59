"""`claresia-sync demo`: the whole system once, against the emulator."""

from __future__ import annotations

from typing import Annotated

import typer

from claresia_sync.config import load_settings


def demo_command(
    invocations: Annotated[
        int, typer.Option(min=1, max=100_000, help="Simulated invocations per organisation.")
    ] = 250,
) -> None:
    """Embedded PostgreSQL + emulator: import, configure, publish, invoke, poll, report."""
    from claresia_sync.cli.output import console
    from claresia_sync.demo import run_demo

    run_demo(load_settings(), console(), invocations=invocations)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)
