"""`claresia-sync run` (the daemon) and `claresia-sync status`."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Annotated

import typer
from rich.table import Table

from claresia_sync.cli.output import console, print_json
from claresia_sync.config import Settings, flag_help, load_settings, use_settings
from claresia_sync.db import open_database
from claresia_sync.db.migrate import SchemaMissing, schema_behind, upgrade
from claresia_sync.errors import ExitCode
from claresia_sync.status import OrgStatus, TenantStatus, org_status, status_json, tenant_status
from claresia_sync.telemetry.sources import SourceState, source_states

log = logging.getLogger(__name__)


def run_command(
    poll_interval: Annotated[
        float | None, typer.Option(help=flag_help("poll_interval"), show_default=False)
    ] = None,
    ops_host: Annotated[
        str | None, typer.Option(help=flag_help("ops_host"), show_default=False)
    ] = None,
    ops_port: Annotated[
        int | None, typer.Option(help=flag_help("ops_port"), show_default=False)
    ] = None,
    publish_workers: Annotated[
        int | None, typer.Option(help=flag_help("publish_workers"), show_default=False)
    ] = None,
    publish_concurrency: Annotated[
        int | None, typer.Option(help=flag_help("publish_concurrency"), show_default=False)
    ] = None,
    org_concurrency: Annotated[
        int | None, typer.Option(help=flag_help("org_concurrency"), show_default=False)
    ] = None,
    drift_interval: Annotated[
        float | None, typer.Option(help=flag_help("drift_interval"), show_default=False)
    ] = None,
    job_fallback_interval: Annotated[
        float | None, typer.Option(help=flag_help("job_fallback_interval"), show_default=False)
    ] = None,
    log_format: Annotated[
        str | None, typer.Option(help=flag_help("log_format"), show_default=False)
    ] = None,
    center_host: Annotated[
        str | None, typer.Option(help=flag_help("center_host"), show_default=False)
    ] = None,
    center_port: Annotated[
        int | None, typer.Option(help=flag_help("center_port"), show_default=False)
    ] = None,
    center_tokens: Annotated[
        str | None, typer.Option(help=flag_help("center_tokens"), show_default=False)
    ] = None,
    otlp_host: Annotated[
        str | None, typer.Option(help=flag_help("otlp_host"), show_default=False)
    ] = None,
    otlp_port: Annotated[
        int | None, typer.Option(help=flag_help("otlp_port"), show_default=False)
    ] = None,
    otlp_max_body_bytes: Annotated[
        int | None, typer.Option(help=flag_help("otlp_max_body_bytes"), show_default=False)
    ] = None,
    migrate: Annotated[
        bool, typer.Option("--migrate/--no-migrate", help="Upgrade the schema before starting.")
    ] = False,
) -> None:
    """Run the daemon: poll audit logs, serve publish jobs, check drift, until SIGTERM; with
    --center-tokens the Command Center, with --otlp-port the Claude Code OTLP receiver."""
    from claresia_sync.center.app import with_center
    from claresia_sync.daemon.runtime import run_daemon
    from claresia_sync.daemon.service import DaemonConfig
    from claresia_sync.logs import configure_logging

    flags = {
        "poll_interval": poll_interval,
        "ops_host": ops_host,
        "ops_port": ops_port,
        "publish_workers": publish_workers,
        "publish_concurrency": publish_concurrency,
        "org_concurrency": org_concurrency,
        "drift_interval": drift_interval,
        "job_fallback_interval": job_fallback_interval,
        "log_format": log_format,
        "center_host": center_host,
        "center_port": center_port,
        "center_tokens": center_tokens,
        "otlp_host": otlp_host,
        "otlp_port": otlp_port,
        "otlp_max_body_bytes": otlp_max_body_bytes,
    }
    settings = use_settings(Settings.load(flags))  # every value checked before anything starts
    configure_logging(settings.log_format, logging.INFO)
    with open_database(settings) as engine:
        if migrate:
            result = upgrade(engine)
            if result.applied:
                applied = ", ".join(map(str, result.applied))
                log.info("schema migrated to %s: applied %s", result.after, applied)
        with engine.connect() as conn:
            behind = schema_behind(conn)
        if behind:  # it would answer /readyz and fail every poll and job on a missing table
            raise SchemaMissing(behind, then="or start it with `claresia-sync run --migrate`")
        daemon = run_daemon(engine, DaemonConfig.of(settings), settings)
        asyncio.run(with_center(engine, settings, daemon))  # the Command Center, if configured


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def status_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """Per tenant: last publish, lag, errors, skills live. Per organisation: checkpoint, age,
    last poll and its error. Per telemetry source of a Claude Enterprise organisation: last
    success, lag, errors. Exits 3 when an organisation's poll, a tenant's publishing or a
    telemetry source is failing."""
    with open_database(load_settings()) as engine, engine.connect() as conn:
        tenants, orgs, sources = tenant_status(conn), org_status(conn), source_states(conn)
    now = dt.datetime.now(dt.UTC)
    report = status_json(tenants, orgs, now, sources)
    if as_json:
        print_json(report)
    else:
        _print_status(tenants, orgs, now)
        _print_sources(sources, now)
    if report["failing"]:
        raise typer.Exit(ExitCode.FAILURES)


def _print_status(tenants: list[TenantStatus], orgs: list[OrgStatus], now: dt.datetime) -> None:
    out = console()
    table = Table(title="Tenants")
    for col in ("tenant", "live", "failed", "last publish", "job", "lag", "queued"):
        table.add_column(col)
    table.add_column("last error", overflow="fold")
    for t in tenants:
        table.add_row(
            t.slug if t.parent is None else f"  {t.slug}",
            str(t.live),
            str(t.failed),
            _age((now - t.last_publish_at).total_seconds()) + " ago"
            if t.last_publish_at
            else "never",
            t.last_job_status or "-",
            f"{t.last_lag_seconds:.1f}s" if t.last_lag_seconds is not None else "-",
            str(t.pending_jobs),
            t.last_error or "",
        )
    out.print(table)
    table = Table(title="Organisations")
    for col in ("org", "tenant", "checkpoint", "age", "last poll", "events", "quarantined"):
        table.add_column(col)
    table.add_column("error", overflow="fold")
    for o in orgs:
        table.add_row(
            o.org_id,
            o.tenant,
            o.after_id or "(start)",
            _age(o.checkpoint_age(now)),
            o.last_poll_status or "never",
            str(o.last_poll_events if o.last_poll_events is not None else "-"),
            str(o.quarantined),
            o.last_poll_error or "",
        )
    out.print(table)
    if not tenants:
        out.print("no tenants yet: `claresia-sync tenants apply FILE.yaml`")


def _print_sources(sources: list[SourceState], now: dt.datetime) -> None:
    if not sources:
        return
    table = Table(title="Telemetry sources")
    for col in ("source", "org / tenant", "last success", "lag", "errors"):
        table.add_column(col)
    table.add_column("last error", overflow="fold")
    for x in sources:
        table.add_row(
            x.source,
            x.org_id,
            _age((now - x.last_success_at).total_seconds()) + " ago"
            if x.last_success_at
            else "never",
            _age(x.lag_seconds),
            str(x.errors_total),
            x.last_error or "",
        )
    console().print(table)


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)
    app.command("status")(status_command)
