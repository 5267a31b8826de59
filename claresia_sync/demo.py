"""`claresia-sync demo`: the whole system once, on the embedded default, in under a minute.

Embedded PostgreSQL (or `CLARESIA_DATABASE_URL`), the emulator on a free loopback port, the
example catalog and tenants, a connection test, a publish, simulated invocations, one audit
poll and a telemetry report. Every step uses the same code as the real commands.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from claresia_sync.api.connect import TenantConnection
from claresia_sync.catalog_store import import_catalog
from claresia_sync.config import Settings
from claresia_sync.connection_check import check_tenant_connection
from claresia_sync.db import open_database
from claresia_sync.db.engine import display_url
from claresia_sync.db.models import Archetype, Tenant
from claresia_sync.emulator import DEMO_SEED, EmulatorServer
from claresia_sync.errors import UserError
from claresia_sync.ir import load_catalog
from claresia_sync.publish import job_run, jobs
from claresia_sync.publish.report import summary_table
from claresia_sync.resources import shipped
from claresia_sync.target_check import check_targets
from claresia_sync.telemetry.poller import poll_once
from claresia_sync.telemetry.report import render, skill_report
from claresia_sync.tenancy import apply_tenants, parse_tenants
from claresia_sync.tenancy.lookup import tenant_targets

# The demo organisations' keys as the emulator's seed defines them; only set where the operator
# has not set these variables already.
DEMO_KEYS = {
    "CLARESIA_DAINESE_ADMIN_KEY": (
        "sk-ant-admin01-dainese-DEMO-0000000000000000000000000000000000000000000000"
    ),
    "CLARESIA_ACME_ADMIN_KEY": (
        "sk-ant-admin01-acme-DEMO-000000000000000000000000000000000000000000000000000"
    ),
    "CLARESIA_FERRETTI_ENTERPRISE_KEY": (
        "sk-ant-api01-ferretti-DEMO-000000000000000000000000000000000000000000000000"
    ),
    "CLARESIA_VESPUCCI_SUPPORT_API_KEY": (
        "sk-ant-api03-vespucci-SUPPORT-0000000000000000000000000000000000000000000"
    ),
}
# The emulator's port when it is free: the tenants the demo applies keep this base URL, so the
# "where to look next" commands work after the demo with `claresia-sync emulator --port 8765`.
DEMO_EMULATOR_PORT = 8765
# (org, user) pairs whose @ picker the demo shows: an engineer, a PM, a sales rep, a guest; in
# Claude Enterprise (org_ferretti, plugins): an engineer, a designer and one in both groups.
PICKER_USERS = [
    ("org_dainese", "user_dainese_ana"),
    ("org_dainese", "user_dainese_giulia"),
    ("org_dainese", "user_dainese_elena"),
    ("org_dainese", "user_dainese_guest"),
    ("org_acme", "user_acme_alice"),
    ("org_ferretti", "user_ferretti_anna"),
    ("org_ferretti", "user_ferretti_chiara"),
    ("org_ferretti", "user_ferretti_bruno"),
    ("org_ferretti", "user_ferretti_dario"),
]
ENTERPRISE_ORGS = {"org_ferretti"}
# The tenant on claude-api: the skills of its Claude API workspace, which its own applications
# load (`container.skills` of a Messages request); no user picker.
API_TENANT, API_ORG, API_WORKSPACE = "vespucci", "org_vespucci", "wrkspc_vespucci_support"


class Demo:
    def __init__(self, settings: Settings, console: Console, invocations: int) -> None:
        self.settings = settings
        self.console = console
        self.invocations = invocations
        self.started = time.monotonic()
        self.emulator_port = 0

    def step(self, text: str) -> None:
        self.console.print(f"[bold]▸ {text}[/bold]  [dim]({time.monotonic() - self.started:.1f}s)")

    def run(self) -> None:
        for name, value in DEMO_KEYS.items():
            os.environ.setdefault(name, value)
        where = self.settings.database_url or f"embedded, under {self.settings.state_dir}"
        self.step(f"PostgreSQL ({where}) and the Anthropic API emulator")
        with (
            EmulatorServer(DEMO_SEED, port=_free_or_any(DEMO_EMULATOR_PORT)) as emulator,
            open_database(self.settings, migrate=True) as engine,
        ):
            self.console.print(f"  database {display_url(engine.url)}, schema migrated")
            self.console.print(f"  emulator {emulator.base_url}")
            self.emulator_port = emulator.port
            self._configure(engine, emulator)
            asyncio.run(self._connection_test(engine, emulator))
            self._publish(engine, emulator)
            self._invoke_and_poll(engine, emulator)
            self._report(engine)
        self._next_steps()

    def _configure(self, engine: Engine, emulator: EmulatorServer) -> None:
        self.step("Import the example catalog and apply the example tenants")
        catalog = load_catalog([shipped("skills_ir/catalog")])
        if catalog.problems:
            raise UserError(f"the example catalog has problems: {catalog.problems[0]}")
        example = shipped("deploy/tenants.example.yaml")
        text = example.read_text(encoding="utf-8")
        # The example's organisations live in the emulator for the demo.
        text = re.sub(
            r"^( +)org_id: ",
            lambda m: f"{m[1]}base_url: {emulator.base_url}\n{m[1]}org_id: ",
            text.replace(
                "      # base_url: http://127.0.0.1:8765   # optional: the emulator, or a proxy\n",
                "",
            ),
            flags=re.MULTILINE,
        )
        config = parse_tenants(text, str(example))
        with Session(engine) as session:
            imported = import_catalog(session, catalog.skills)
            changes = apply_tenants(session, config, source=str(example))
            session.commit()
        self.console.print(
            f"  catalog: {len(catalog.skills)} skills ({len(imported.added)} added, "
            f"{len(imported.updated)} updated); tenants: {len(changes)} change(s)"
        )

    async def _connection_test(self, engine: Engine, emulator: EmulatorServer) -> None:
        self.step("Test connection (as the onboarding portal's button does)")
        conn = TenantConnection.ad_hoc("env:CLARESIA_DAINESE_ADMIN_KEY", emulator.base_url)
        report = await check_tenant_connection(conn)
        for line in report.lines():
            self.console.print(f"  {line}")
        # A tenant on claude-enterprise and one on claude-api: the same button, for their
        # Claude Enterprise organisation and their Claude API workspace.
        for slug in ("ferretti", API_TENANT):
            with Session(engine) as session:
                targets = tenant_targets(session, slug)
                groups = {
                    f"{slug}/{a.slug}": a.rbac_group_id
                    for a in session.scalars(
                        select(Archetype).join(Tenant).where(Tenant.slug == slug)
                    )
                }
            for target in await check_targets(targets, groups):
                self.console.print(f"  [{target.target}] {target.where}", markup=False)
                for line in [*target.lines, *target.problems]:
                    self.console.print(f"    {line}", markup=False)

    def _publish(self, engine: Engine, emulator: EmulatorServer) -> None:
        self.step("Publish every tenant's granted skills (the onboarding trigger)")
        with Session(engine) as session:
            # force: compare with the emulator's own list, which is new on every demo run
            job_id = jobs.enqueue(session, None, force=True)
            session.commit()
        job = jobs.claim(engine, "demo", job_id)
        if job is None:
            raise UserError(f"publish job {job_id} was taken by another process")
        outcome = asyncio.run(
            job_run.run_job(
                engine,
                job,
                api_timeout=self.settings.api_timeout_s,
                retry=job_run.RetryPolicy(rounds=self.settings.job_retry_rounds),
                worker="demo",  # its units (one per organisation) are claimed by it too
            )
        )
        self.console.print(
            summary_table(outcome.job_id, outcome.status, outcome.stats, outcome.errors)
        )
        table = Table(
            title="What users see in Claude's @ picker (emulator; org_ferretti: Claude "
            "Enterprise, as plugins)"
        )
        table.add_column("user")
        table.add_column("skills")
        for org_id, user in PICKER_USERS:
            if org_id in ENTERPRISE_ORGS:  # what /_emulator/visible answers for its users
                names = sorted(
                    s["name"] for s in emulator.state.visible_plugin_skills(org_id, user)
                )
            else:
                names = sorted(s.name for s in emulator.state.visible_skills(org_id, user))
            table.add_row(user, "\n".join(names) or "(none: no group grants a skill)")
        self.console.print(table)
        self._workspace_skills(emulator)

    def _workspace_skills(self, emulator: EmulatorServer) -> None:
        """The claude-api tenant's workspace as its applications' key lists it (`GET
        /v1/skills`): each display name carries the ownership marker (hash shortened here)."""
        skills = emulator.state.org(API_ORG).workspace_skills[API_WORKSPACE].skills.values()
        self.console.print(
            f"Skills in the Claude API workspace {API_WORKSPACE} ({API_TENANT}, claude-api: "
            "loaded by its own applications, in no @ picker):",
            markup=False,
        )
        for skill in skills:
            shown = re.sub(r"(sha256:[0-9a-f]{12})[0-9a-f]+", r"\1…", skill.display_name)
            print(f"  {skill.id}  {shown}  ({len(skill.versions)} version(s))")

    def _invoke_and_poll(self, engine: Engine, emulator: EmulatorServer) -> None:
        self.step(f"Simulate {self.invocations} invocations per organisation, then one audit poll")
        for org_id in ("org_dainese", "org_acme"):
            emulator.state.generate_invocations(
                org_id, self.invocations, failure_rate=0.08, seed=2026
            )
        results = asyncio.run(
            poll_once(
                engine,
                settings=self.settings.telemetry,
                client_options={"timeout": self.settings.api_timeout_s},
            )
        )
        for r in results:
            print(
                f"  {r.org_id}: {r.inserted} events ingested, {r.quarantined} quarantined, "
                f"checkpoint {r.checkpoint}" + (f", error: {r.error}" if r.error else "")
            )

    def _report(self, engine: Engine) -> None:
        self.step("Telemetry report (last 7 days, from the analyst views)")
        since = dt.datetime.now(dt.UTC) - dt.timedelta(days=7)
        with engine.connect() as conn:
            figures = skill_report(conn, since=since)
            footer = conn.exec_driver_sql(
                "SELECT footer_md FROM telemetry_event WHERE status = 'failed' LIMIT 1"
            ).scalar()
        print(render(figures, "table"))  # plain: a wide table must not be wrapped by rich
        if footer:
            self.console.print("\n  a card footer, as Claude shows it under a failed run:")
            print(f"  {footer}")

    def _next_steps(self) -> None:
        took = time.monotonic() - self.started
        env = (
            "CLARESIA_DATABASE_URL is set"
            if self.settings.database_url
            else f"the embedded database stays in {self.settings.state_dir}"
        )
        keys = " ".join(f"{name}={value}" for name, value in DEMO_KEYS.items())
        self.console.print(
            f"\n[bold green]Demo finished in {took:.1f}s.[/bold green] ({env})\n"
            "Where to look next:\n"
            "  claresia-sync status                 per tenant and organisation\n"
            "  claresia-sync telemetry report --format csv\n"
            "  the plan against a fresh emulator (its state lives in memory), in two shells:\n"
            f"    claresia-sync emulator --port {self.emulator_port}\n"
            f"    env {keys} claresia-sync republish --all --force --dry-run\n"
            "  docs/analytics.md                    tables, views and queries for analysts\n"
            "  README.md                            running the daemon, deployment",
            soft_wrap=True,
        )


def _free_or_any(port: int) -> int:
    """`port` if nothing listens there, else 0 (any free port)."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return 0
    return port


@contextmanager
def _unchanged_env() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in DEMO_KEYS}
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_demo(settings: Settings, console: Console, invocations: int = 250) -> None:
    """The demo, printed on the command's `console` (`cli/demo.py`: the CLI's)."""
    with _unchanged_env():
        Demo(settings, console, invocations).run()
