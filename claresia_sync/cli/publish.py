"""`claresia-sync publish --tenant T` and `claresia-sync republish --all | --tenant T`.

`publish` queues a job for the daemon (with `--wait`, it runs the job here unless a daemon has
already claimed it, and then waits for that run). `republish` runs its job in this process, with
this shell's keys and `--concurrency` (and CLARESIA_ORG_CONCURRENCY per organisation): the job is
inserted already claimed by this process, so a running daemon cannot take it. `republish --all`
is split into one unit per organisation (`publish.job_units`): this process runs them, and any
running daemon claims some too (with its own keys); the command ends when the last unit has,
wherever it ran, and reports the whole job. A run here is the daemon's (`job_run.run_job`): it
waits while another run of one of its tenants is under way, never runs beside it. Either prints
the outcome of the run that did the work and exits 3 (`ExitCode.FAILURES`) when that run ended
partial, failed or cancelled.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from claresia_sync.cli.output import console, print_json
from claresia_sync.config import Settings, load_settings
from claresia_sync.db import open_database
from claresia_sync.db.models import JobStatus
from claresia_sync.errors import ExitCode, UserError
from claresia_sync.publish import jobs
from claresia_sync.publish.applier import DEFAULT_CONCURRENCY, CallBounds
from claresia_sync.publish.job_run import JobOutcome, RetryPolicy, run_job
from claresia_sync.publish.reconcile import reconcile
from claresia_sync.publish.report import (
    PLAN_KEYS,
    counts_line,
    errors_table,
    plan_counts,
    plan_json,
    plan_table,
    summary_table,
)

Concurrency = Annotated[
    int,
    typer.Option("--concurrency", min=1, max=256, help="API calls in flight at most."),
]


def cli_worker() -> str:
    """The `claimed_by` of a job run by this command."""
    return f"cli-{socket.gethostname()}-{os.getpid()}"


def _run_with_progress(
    engine: Engine, job: jobs.ClaimedJob, concurrency: int, settings: Settings
) -> JobOutcome:
    with Progress(
        TextColumn(f"publish job {job.id}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("items", total=None)  # skills; organisations for a split job

        def progress(done: int, known: int) -> None:
            bar.update(task, completed=done, total=known)

        def waiting(roots: list[str]) -> None:
            bar.console.print(
                f"publish job {job.id} waits for the run of {', '.join(roots)} under way (a "
                "daemon's job or another command): a tenant is published by one run at a time"
            )

        return asyncio.run(
            run_job(
                engine,
                job,
                api_timeout=settings.api_timeout_s,
                progress=progress,
                retry=RetryPolicy(rounds=settings.job_retry_rounds),
                waiting=waiting,
                bounds=CallBounds(concurrency, settings.org_concurrency),
                worker=cli_worker(),
            )
        )


def run_here(
    engine: Engine, job: jobs.ClaimedJob, concurrency: int, settings: Settings
) -> tuple[JobStatus, dict[str, Any], list[Any]]:
    """Run a job claimed by this process to its end: when it yields to a kill-switch job on its
    tenants (back in the queue), take it again once that job is done (or, if a daemon took it
    meanwhile, wait for that run). The outcome of the run that finished it."""
    while True:
        outcome = _run_with_progress(engine, job, concurrency, settings)
        if outcome.status != JobStatus.QUEUED:
            return outcome.status, outcome.stats, outcome.errors
        console(stderr=True).print(
            f"publish job {job.id} gave way to a kill-switch job on its tenants; it resumes "
            "when that one is done"
        )
        again = None
        while again is None:
            time.sleep(0.5)
            again = jobs.claim(engine, cli_worker(), job.id)
            if again is None and jobs.get_job(engine, job.id).status != JobStatus.QUEUED:
                view = _wait_for(engine, job.id, 3600)  # a daemon took it
                return view.status, view.stats, view.errors
        job = again


def _wait_for(engine: Engine, job_id: int, timeout: float) -> jobs.JobView:
    deadline = time.monotonic() + timeout
    while True:
        view = jobs.get_job(engine, job_id)
        if view.status in jobs.FINISHED:
            return view
        if time.monotonic() > deadline:
            raise UserError(f"publish job {job_id} is still {view.status} after {timeout:.0f}s")
        time.sleep(0.5)


def report_outcome(
    job_id: int, status: JobStatus, stats: dict[str, Any], errors: list[Any]
) -> None:
    """Print a finished job's summary (and errors); exit 3 unless it succeeded."""
    console().print(summary_table(job_id, status, stats, errors))
    if errors:
        console(stderr=True).print(errors_table(errors))
    if status != JobStatus.SUCCEEDED:
        failed = stats.get("failed", len(errors))
        raise UserError(
            f"publish job {job_id} {status}: {failed} skill(s) failed (see errors; "
            f"`claresia-sync jobs show {job_id}`)",
            exit_code=ExitCode.FAILURES,
        )


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
    settings = load_settings()
    with open_database(settings) as engine:
        with Session(engine) as session:
            job_id = jobs.enqueue(session, tenant, force=force)
            session.commit()
        print(f"queued publish job {job_id} for tenant {tenant}")
        if not wait:
            return
        job = jobs.claim(engine, cli_worker(), job_id)
        deadline = time.monotonic() + timeout
        while job is None and jobs.get_job(engine, job_id).status == JobStatus.QUEUED:
            if time.monotonic() > deadline:  # held back by a kill switch on its tenants
                raise UserError(f"publish job {job_id} is still queued after {timeout:.0f}s")
            time.sleep(0.5)
            job = jobs.claim(engine, cli_worker(), job_id)
        if job is None:  # a daemon took it first: its run is the one to report
            view = _wait_for(engine, job_id, timeout)
            report_outcome(job_id, view.status, view.stats, view.errors)
        else:
            report_outcome(job_id, *run_here(engine, job, concurrency, settings))


def _dry_run(
    engine: Engine,
    tenant: str | None,
    force: bool,
    concurrency: int,
    as_json: bool,
    api_timeout: float,
) -> None:
    run = asyncio.run(
        reconcile(
            engine,
            tenant,
            check_remote=force,
            dry_run=True,
            concurrency=concurrency,
            api_timeout=api_timeout,
        )
    )
    counts = plan_counts(run.plan)
    if as_json:
        print_json(plan_json(run.plan))
    else:
        console().print(plan_table(run.plan))
        print(f"plan: {counts_line(counts, PLAN_KEYS)} (dry run: nothing written)")
    if counts.get("failed"):
        refused = sum(1 for org in run.plan.orgs if org.refused)
        raise UserError(
            f"the plan has {counts['failed']} failed item(s) and {refused} refused "
            "organisation(s): see the `why` column",
            exit_code=ExitCode.FAILURES,
        )


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
    as_json: Annotated[
        bool, typer.Option("--json", help="With --dry-run: the plan as JSON on stdout.")
    ] = False,
    concurrency: Concurrency = DEFAULT_CONCURRENCY,
) -> None:
    """Bring the organisations in line with the current grants ("Republish all"), in this
    process (a running daemon does not take the job; with --all, daemons help with its units,
    one per organisation)."""
    if all_tenants == (tenant is not None):
        raise UserError("republish needs exactly one of --all or --tenant T")
    if as_json and not dry_run:
        raise UserError("--json goes with --dry-run (a real run prints its job's summary)")
    settings = load_settings()
    with open_database(settings) as engine:
        if dry_run:
            _dry_run(engine, tenant, force, concurrency, as_json, settings.api_timeout_s)
            return
        with Session(engine) as session:
            job_id = jobs.enqueue(session, tenant, force=force, claimed_by=cli_worker())
            session.commit()
        job = jobs.claimed(engine, job_id)
        report_outcome(job_id, *run_here(engine, job, concurrency, settings))


def register(app: typer.Typer) -> None:
    app.command("publish")(publish_cmd)
    app.command("republish")(republish_cmd)
