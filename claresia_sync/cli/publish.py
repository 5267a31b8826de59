"""`claresia-sync publish --tenant T` and `claresia-sync republish --all | --tenant T`.

There is no daemon yet, so `publish --wait` and `republish` run the job in this process (a
daemon that already took the job is waited for instead).
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from claresia_sync.config import load_settings
from claresia_sync.db import open_database
from claresia_sync.db.models import PublishJob
from claresia_sync.errors import UserError
from claresia_sync.publish.applier import DEFAULT_CONCURRENCY
from claresia_sync.publish.jobs import JobOutcome, claim, enqueue, run_job
from claresia_sync.publish.reconcile import reconcile
from claresia_sync.publish.report import (
    PLAN_KEYS,
    counts_line,
    errors_table,
    plan_counts,
    plan_table,
    summary_table,
)

TERMINAL = ("succeeded", "partial", "failed")

Concurrency = Annotated[
    int,
    typer.Option("--concurrency", min=1, max=256, help="API calls in flight at most."),
]


def _console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    return Console(file=stream, width=None if stream.isatty() else 200)


def _run_with_progress(engine: Engine, job_id: int, concurrency: int) -> JobOutcome | None:
    job = claim(engine, "cli", job_id)
    if job is None:
        return None  # someone else (a daemon) took it
    with Progress(
        TextColumn(f"publish job {job_id}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("skills", total=None)

        def progress(done: int, known: int) -> None:
            bar.update(task, completed=done, total=known)

        return asyncio.run(run_job(engine, job, concurrency=concurrency, progress=progress))


def _wait_for(engine: Engine, job_id: int, timeout: float) -> tuple[str, dict[str, Any], list[Any]]:
    deadline = time.monotonic() + timeout
    while True:
        with Session(engine) as session:
            row = session.get(PublishJob, job_id)
            if row is None:
                raise UserError(f"publish job {job_id} disappeared (its tenant was removed?)")
            if row.status in TERMINAL:
                return row.status, row.stats, row.errors
        if time.monotonic() > deadline:
            raise UserError(f"publish job {job_id} is still {row.status} after {timeout:.0f}s")
        time.sleep(0.5)


def _finish(engine: Engine, job_id: int, concurrency: int, timeout: float) -> None:
    outcome = _run_with_progress(engine, job_id, concurrency)
    if outcome is None:
        status, stats, errors = _wait_for(engine, job_id, timeout)
    else:
        status, stats, errors = outcome.status, outcome.stats, outcome.errors
    out = _console()
    out.print(summary_table(job_id, status, stats, errors))
    if errors:
        _console(stderr=True).print(errors_table(errors))
    if status != "succeeded":
        failed = stats.get("failed", len(errors))
        raise UserError(f"publish job {job_id} {status}: {failed} skill(s) failed (see errors)")


def publish_cmd(
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant slug (with its sub-tenants).")],
    wait: Annotated[
        bool, typer.Option("--wait", help="Run the job now (or wait for a daemon's run).")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Check each skill against the organisation itself.")
    ] = False,
    concurrency: Concurrency = DEFAULT_CONCURRENCY,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for a daemon's run.")] = 600,
) -> None:
    """Queue the publication of one tenant's granted skills (the onboarding trigger)."""
    with open_database(load_settings()) as engine:
        with Session(engine) as session:
            job_id = enqueue(session, tenant, force=force)
            session.commit()
        print(f"queued publish job {job_id} for tenant {tenant}")
        if wait:
            _finish(engine, job_id, concurrency, timeout)


def republish_cmd(
    all_tenants: Annotated[bool, typer.Option("--all", help="Every tenant.")] = False,
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="One tenant (with its sub-tenants).")
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="List the organisation's claresia- skills and repair any that were deleted or "
            "altered behind our back.",
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan and exit without writing.")
    ] = False,
    concurrency: Concurrency = DEFAULT_CONCURRENCY,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for a daemon's run.")] = 600,
) -> None:
    """Bring the organisations in line with the current grants ("Republish all")."""
    if all_tenants == (tenant is not None):
        raise UserError("republish needs exactly one of --all or --tenant T")
    with open_database(load_settings()) as engine:
        if dry_run:
            run = asyncio.run(
                reconcile(engine, tenant, check_remote=force, dry_run=True, concurrency=concurrency)
            )
            _console().print(plan_table(run.plan))
            print(
                f"plan: {counts_line(plan_counts(run.plan), PLAN_KEYS)} (dry run: nothing written)"
            )
            return
        with Session(engine) as session:
            job_id = enqueue(session, tenant, force=force)
            session.commit()
        _finish(engine, job_id, concurrency, timeout)


def register(app: typer.Typer) -> None:
    app.command("publish")(publish_cmd)
    app.command("republish")(republish_cmd)
