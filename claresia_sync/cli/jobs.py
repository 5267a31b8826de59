"""`claresia-sync jobs list | show | retry | cancel | prune`: the publish-job queue."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.table import Table

from claresia_sync.cli.output import console, print_json
from claresia_sync.config import load_settings
from claresia_sync.db import open_database
from claresia_sync.db.models import JobStatus
from claresia_sync.publish import jobs
from claresia_sync.publish.report import errors_table, summary_table

app = typer.Typer(help="Publish jobs: list, show, retry, cancel, prune.", no_args_is_help=True)

JobId = Annotated[int, typer.Argument(help="The job's id (see `jobs list`).", min=1)]
AsJson = Annotated[bool, typer.Option("--json", help="JSON on stdout.")]


def _when(t: dt.datetime | None) -> str:
    return "-" if t is None else t.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


@app.command("list")
def list_cmd(
    status: Annotated[
        JobStatus | None, typer.Option("--status", help="Only jobs of this status.")
    ] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant's jobs.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Newest N jobs.")] = 20,
    parent: Annotated[
        int | None,
        typer.Option("--parent", min=1, help="The units of this job over every tenant instead."),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """The newest jobs: status, scope, times, counts (a job over every tenant runs as one unit
    per organisation: `--parent ID` lists them)."""
    with open_database(load_settings()) as engine:
        views = jobs.list_jobs(
            engine, status=status, tenant_slug=tenant, limit=limit, parent=parent
        )
    if as_json:
        print_json([v.as_json() for v in views])
        return
    table = Table("id", "status", "tenant", "force", "requested", "finished", "by", "failed")
    for v in views:
        status_text = str(v.status) + (" (cancel asked)" if v.cancel_requested else "")
        table.add_row(
            str(v.id),
            status_text,
            v.tenant or "all",
            "yes" if v.force else "",
            _when(v.requested_at),
            _when(v.finished_at),
            v.claimed_by or v.requested_by,
            str(v.stats.get("failed", "")),
        )
    console().print(table)


@app.command("show")
def show_cmd(job_id: JobId, as_json: AsJson = False) -> None:
    """One job: its scope, who ran it, its counts and what still fails, and why."""
    with open_database(load_settings()) as engine:
        view = jobs.get_job(engine, job_id)
    if as_json:
        print_json(view.as_json())
        return
    out = console()
    lines = [
        f"publish job {view.id}: {view.status}"
        + (
            " (cancel requested)"
            if view.cancel_requested and view.status == JobStatus.RUNNING
            else ""
        ),
        f"  scope: {view.tenant or 'all tenants'}{' (forced: remote lists)' if view.force else ''}",
        f"  requested: {_when(view.requested_at)} by {view.requested_by}"
        + (f" (retry of job {view.retry_of})" if view.retry_of else ""),
        f"  started: {_when(view.started_at)} by {view.claimed_by or '-'}",
        f"  finished: {_when(view.finished_at)}",
    ]
    progress = view.stats.get("progress") if view.status == JobStatus.RUNNING else None
    units = view.unit_counts
    if units is not None:  # a job over every tenant: one unit per organisation
        states = ", ".join(f"{units[str(s)]} {s}" for s in JobStatus if units.get(str(s)))
        lines.append(
            f"  units (one per organisation): {units['ended']} of {units['total']} ended"
            + (f" ({states})" if states else "")
            + f"; `claresia-sync jobs list --parent {view.id}`"
        )
    if progress:  # a running job: what its heartbeat recorded last
        lines.append(f"  progress: {progress['done']} of {progress['total']} skill(s) done")
    elif view.stats:
        lines.append(
            f"  rounds: {view.stats.get('rounds', 1)}, skills retried: "
            f"{view.stats.get('retried', 0)}, still failing: "
            f"{view.stats.get('still_failing', view.stats.get('failed', 0))}"
        )
    for line in lines:
        out.print(line, highlight=False)
    if view.status in jobs.FINISHED and view.stats:
        out.print(summary_table(view.id, view.status, view.stats, view.errors))
    if view.errors:
        out.print(errors_table(view.errors))


@app.command("retry")
def retry_cmd(job_id: JobId) -> None:
    """Queue a new job with the scope of a partial, failed or cancelled one."""
    with open_database(load_settings()) as engine:
        new_id = jobs.retry(engine, job_id)
    print(f"queued publish job {new_id} (retry of job {job_id})")


@app.command("cancel")
def cancel_cmd(job_id: JobId) -> None:
    """Cancel a queued job, or ask a running one to stop at its next skill."""
    with open_database(load_settings()) as engine:
        status = jobs.cancel(engine, job_id)
    if status == JobStatus.CANCELLED:
        print(f"publish job {job_id} cancelled")
    else:
        print(
            f"publish job {job_id} is {status}: it stops at its next skill and ends cancelled "
            f"(`claresia-sync jobs show {job_id}`)"
        )


@app.command("prune")
def prune_cmd(
    older_than_days: Annotated[
        float | None,
        typer.Option(
            "--older-than-days",
            min=0,
            help="Age in days of the finished jobs to delete [default: CLARESIA_JOB_KEEP_DAYS, "
            "else 30].",
        ),
    ] = None,
) -> None:
    """Delete finished jobs older than the given age (the daemon does it daily)."""
    settings = load_settings()
    days = settings.job_keep_days if older_than_days is None else older_than_days
    keep = dt.timedelta(days=days)
    with open_database(settings) as engine:
        pruned = jobs.prune(engine, keep)
    print(f"pruned {pruned} finished publish job(s) older than {keep}")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="jobs")
