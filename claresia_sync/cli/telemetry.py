"""`claresia-sync telemetry ...`: poll the audit logs once, report, apply retention."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from typing import Annotated

import typer

from claresia_sync.config import load_settings
from claresia_sync.db import open_database
from claresia_sync.errors import UserError

telemetry_app = typer.Typer(
    help="Audit-log telemetry: poll, report, retention.", no_args_is_help=True
)


@telemetry_app.command("poll")
def poll_cmd(
    once: Annotated[
        bool, typer.Option("--once", help="Poll every organisation once, then exit.")
    ] = False,
    tenant: Annotated[
        str | None,
        typer.Option(help="Only this tenant's organisation (a sub-tenant polls its parent's)."),
    ] = None,
    page_size: Annotated[int, typer.Option(min=1, max=1000, help="Events per page.")] = 1000,
) -> None:
    """Ingest new audit events into telemetry_event (one line per organisation)."""
    from claresia_sync.telemetry.poller import poll_once

    if not once:
        raise UserError(
            "give --once (`claresia-sync run` polls every organisation on its schedule)"
        )
    settings = load_settings()
    with open_database(settings) as engine:
        results = asyncio.run(
            poll_once(
                engine,
                tenant=tenant,
                settings=settings.telemetry,
                page_size=page_size,
                client_options={"timeout": settings.api_timeout_s},
            )
        )
    if not results:
        print("no organisation connections: add tenants with `claresia-sync tenants apply`")
        return
    for r in results:
        print(
            f"{r.org_id} ({r.tenant_slug}): {r.inserted} new, {r.duplicates} duplicate(s), "
            f"{r.quarantined} quarantined, skipped {r.skipped_other_type} of other types and "
            f"{r.skipped_outside_namespace} outside the claresia- namespace; "
            f"{r.pages} page(s), checkpoint {r.checkpoint or '-'}"
        )
    failed = [r for r in results if r.error]
    for r in failed[1:]:
        print(f"also: {r.org_id}: {r.error}", file=sys.stderr)
    if failed:
        raise UserError(f"{failed[0].org_id}: {failed[0].error}")


@telemetry_app.command("report")
def report_cmd(
    tenant: Annotated[
        str | None, typer.Option(help="A tenant (with its sub-tenants when it is a parent).")
    ] = None,
    since: Annotated[
        str, typer.Option(help="Period: 7d, 24h, 30m, 2w, or a date such as 2026-11-01.")
    ] = "7d",
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    by_source: Annotated[
        bool,
        typer.Option(
            "--by-source",
            help="What each source says, over whole UTC days from --since's: audit runs and "
            "failures, Claude Code activations, cost, tokens, users, Claude apps use (skills "
            "analytics), lifecycle events (activity feed); as the view skill_usage_by_source.",
        ),
    ] = False,
    skill: Annotated[
        str | None, typer.Option(help="With --by-source: one skill id's rows only.")
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(
            help="With --by-source: only the rows one source has something in: audit-poller, "
            "claude-code-otlp, skills-analytics or activity-feed."
        ),
    ] = None,
) -> None:
    """Per skill: invocations, failures, failure rate, cost, p50/p95 duration."""
    from sqlalchemy.orm import Session

    from claresia_sync.telemetry.report import (
        FORMATS,
        SOURCES,
        parse_since,
        render,
        render_by_source,
        skill_report,
        source_report,
    )
    from claresia_sync.tenancy.lookup import require_tenant

    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    if (skill or source) and not by_source:
        raise UserError("--skill and --source go with --by-source")
    if source is not None and source not in SOURCES:
        raise UserError(f"--source {source!r}: use one of {', '.join(SOURCES)}")
    start = parse_since(since)
    day = start.astimezone(dt.UTC).date()
    who = f" for tenant {tenant!r}" if tenant else ""
    with open_database(load_settings()) as engine, engine.connect() as conn:
        if tenant is not None:  # an unknown tenant is an error, not "no invocations"
            with Session(conn) as session:
                require_tenant(session, tenant)
        if by_source:
            per_source = source_report(conn, since=day, tenant=tenant, skill=skill, source=source)
            empty = f"no use of any skill{who} in any source since {day:%Y-%m-%d} (UTC days)"
            out = render_by_source(per_source, fmt) if per_source or fmt != "table" else empty
        else:
            figures = skill_report(conn, since=start, tenant=tenant)
            empty = f"no invocations{who} since {start:%Y-%m-%d %H:%M} UTC"
            out = render(figures, fmt) if figures or fmt != "table" else empty
    print(out)


@telemetry_app.command("retention")
def retention_cmd(
    days: Annotated[
        int | None,
        typer.Option(
            min=1, help="Keep this many days (default: CLARESIA_TELEMETRY_RETENTION_DAYS or 365)."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Name the partitions without dropping them.")
    ] = False,
) -> None:
    """Drop monthly partitions older than the retention period (run daily)."""
    from claresia_sync.telemetry.retention import apply_retention

    settings = load_settings()
    telemetry = settings.telemetry
    keep = days or telemetry.retention_days
    with open_database(settings) as engine:
        result = apply_retention(
            engine, keep, dry_run=dry_run, usage_wait_hours=telemetry.otlp_usage_wait_hours
        )
    verb = "would drop" if dry_run else "dropped"
    parts = ", ".join(result.dropped_partitions) or "no partitions"
    print(
        f"retention {keep} days (before {result.bound:%Y-%m-%d}): {verb} {parts}; "
        f"deleted {result.deleted_ids} id(s), {result.deleted_default_rows} stray row(s) and "
        f"{result.claude_code.unmatched} Claude Code prompt(s) without activation"
    )


@telemetry_app.command("replay-quarantine")
def replay_cmd(
    tenant: Annotated[
        str | None,
        typer.Option(help="Only this tenant's organisation (a sub-tenant: its parent's)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be attributed; change nothing.")
    ] = False,
) -> None:
    """Normalise quarantined events again: those whose workspace or skill is now known become
    telemetry rows (`tenants apply` does this by itself after a change)."""
    from claresia_sync.telemetry.quarantine import replay_for_tenant

    settings = load_settings()
    with open_database(settings) as engine:
        results = replay_for_tenant(engine, tenant, settings=settings.telemetry, dry_run=dry_run)
    if not results:
        print("the quarantine is empty")
    verb = "would be attributed" if dry_run else "attributed"
    for r in results:
        left = ", ".join(f"{n} {reason}" for reason, n in r.still.most_common(3))
        print(
            f"{r.org_id}: {r.examined} examined, {r.attributed} {verb} ({r.inserted} new rows); "
            f"{sum(r.still.values())} still quarantined" + (f": {left}" if left else "")
        )


def register(app: typer.Typer) -> None:
    app.add_typer(telemetry_app, name="telemetry")
