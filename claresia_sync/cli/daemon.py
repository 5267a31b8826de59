"""`claresia-sync run` (the daemon) and `claresia-sync status`."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from claresia_sync.config import load_settings
from claresia_sync.db import open_database
from claresia_sync.status import org_status, tenant_status


def run_command(
    poll_interval: Annotated[
        float, typer.Option(help="Seconds between two audit-log polls of one organisation.")
    ] = 60.0,
    ops_host: Annotated[str, typer.Option(help="Address of /healthz, /readyz, /metrics.")] = (
        "0.0.0.0"
    ),
    ops_port: Annotated[int, typer.Option(help="Port of the ops endpoints (0: any free).")] = 9464,
    publish_workers: Annotated[int, typer.Option(help="Publish jobs run at once.")] = 2,
    drift_interval: Annotated[
        float, typer.Option(help="Seconds between drift checks (remote vs publications).")
    ] = 3600.0,
    job_fallback_interval: Annotated[
        float, typer.Option(help="Seconds between queue checks when no NOTIFY arrives.")
    ] = 5.0,
    migrate: Annotated[
        bool, typer.Option("--migrate/--no-migrate", help="Upgrade the schema before starting.")
    ] = False,
    log_format: Annotated[str, typer.Option(help="json or console.")] = "json",
) -> None:
    """Run the daemon: poll audit logs, serve publish jobs, check drift, until SIGTERM."""
    from claresia_sync.daemon.runtime import run_daemon
    from claresia_sync.daemon.service import DaemonConfig
    from claresia_sync.logs import configure_logging

    configure_logging("json" if log_format == "json" else "console", logging.INFO)
    config = DaemonConfig(
        poll_interval=poll_interval,
        poll_jitter=min(5.0, poll_interval / 10),
        ops_host=ops_host,
        ops_port=ops_port,
        publish_workers=publish_workers,
        drift_interval=drift_interval,
        job_fallback_interval=job_fallback_interval,
    )
    with open_database(load_settings(), migrate=migrate) as engine:
        asyncio.run(run_daemon(engine, config))


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def status_command() -> None:
    """Per tenant: last publish, lag, errors, skills live. Per organisation: checkpoint, age."""
    with open_database(load_settings()) as engine, engine.connect() as conn:
        tenants, orgs = tenant_status(conn), org_status(conn)
    now = dt.datetime.now(dt.UTC)
    console = Console()
    table = Table(title="Tenants")
    for col in ("tenant", "live", "failed", "last publish", "job", "lag", "queued", "last error"):
        table.add_column(col)
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
            (t.last_error or "")[:60],
        )
    console.print(table)
    table = Table(title="Organisations")
    for col in (
        "org",
        "tenant",
        "checkpoint",
        "age",
        "last poll",
        "events",
        "quarantined",
        "error",
    ):
        table.add_column(col)
    for o in orgs:
        table.add_row(
            o.org_id,
            o.tenant,
            o.after_id or "(start)",
            _age(o.checkpoint_age(now)),
            o.last_poll_status or "never",
            str(o.last_poll_events if o.last_poll_events is not None else "-"),
            str(o.quarantined),
            (o.last_poll_error or "")[:60],
        )
    console.print(table)
    if not tenants:
        console.print("no tenants yet: `claresia-sync tenants apply FILE.yaml`")


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)
    app.command("status")(status_command)
