"""`claresia-sync demo`: the whole system once, on the embedded default, in under a minute.

Embedded PostgreSQL (or `CLARESIA_DATABASE_URL`), the emulator on a free loopback port, the
example catalog and tenants, a connection test, a publish, then every telemetry source: simulated
invocations and one audit poll, a skills-analytics backfill, an activity-feed repair (a plugin
deleted in claude.ai, republished at once), a Claude Code export through the OTLP receiver; the
report per source. With `serve`, the Command Center and the daemon stay up (its URL and a demo
token printed) until Ctrl-C. Every step uses the same code as the real commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx2
import uvicorn
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from claresia_sync.api.connect import TenantConnection
from claresia_sync.catalog_store import import_catalog
from claresia_sync.center.app import bind, make_center, serving
from claresia_sync.config import Settings
from claresia_sync.connection_check import check_tenant_connection
from claresia_sync.daemon.runtime import run_daemon
from claresia_sync.daemon.service import DaemonConfig
from claresia_sync.db import open_database
from claresia_sync.db.engine import display_url
from claresia_sync.db.models import Archetype, Publication, Tenant
from claresia_sync.emulator import DEMO_SEED, EmulatorServer
from claresia_sync.emulator.claude_code import Prompt, export
from claresia_sync.errors import UserError
from claresia_sync.ir import load_catalog
from claresia_sync.publish import job_run, jobs
from claresia_sync.publish.report import summary_table
from claresia_sync.resources import shipped
from claresia_sync.target_check import check_targets
from claresia_sync.telemetry.activity import ingest_connection as activity_ingest
from claresia_sync.telemetry.analytics_reader import enterprise_connections
from claresia_sync.telemetry.analytics_reader import ingest_connection as analytics_ingest
from claresia_sync.telemetry.otlp_receiver import OtlpReceiver
from claresia_sync.telemetry.poller import poll_once
from claresia_sync.telemetry.report import (
    SOURCES,
    SourceFigures,
    render,
    render_by_source,
    skill_report,
    source_report,
)
from claresia_sync.telemetry.sources import (
    ACTIVITY_FEED,
    AUDIT_POLLER,
    CLAUDE_CODE_OTLP,
    SKILLS_ANALYTICS,
)
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
    # ferretti's Claude Code sends its OTLP export with this bearer token (the receiver's)
    "CLARESIA_FERRETTI_OTLP_TOKEN": "otlp-ferretti-DEMO-000000000000000000000000",
}
# `demo --serve`: the Command Center's token, made afresh for each run and given by reference.
CENTER_TOKEN_VAR = "CLARESIA_DEMO_CENTER_TOKEN"
CENTER_PORT = 9480
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
# The Claude Enterprise tenant whose sources the demo reads: skills analytics, activity feed and
# its Claude Code's OTLP export; the plugin an administrator deletes behind our back.
ENTERPRISE_TENANT, ENTERPRISE_ORG = "ferretti", "org_ferretti"
DELETED_SKILL = "prd-review"
CLAUDE_CODE_SKILLS = ("claresia-ferretti-code-review-checklist", "claresia-ferretti-prd-review")


class Demo:
    def __init__(
        self, settings: Settings, console: Console, invocations: int, serve: bool = False
    ) -> None:
        self.settings = settings
        self.console = console
        self.invocations = invocations
        self.serve = serve
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
            self._analytics(engine, emulator)
            self._activity_repair(engine, emulator)
            self._claude_code(engine)
            self._report(engine)
            self._next_steps()
            if self.serve:
                self._serve(engine)

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
            re.sub(r"^ +# base_url: .*\n", "", text, flags=re.MULTILINE).replace(
                # ferretti's Claude Code exports to the receiver with its token
                "    # otlp_token: env:CLARESIA_FERRETTI_OTLP_TOKEN\n",
                "    otlp_token: env:CLARESIA_FERRETTI_OTLP_TOKEN\n",
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

    def _enterprise_connection(self, engine: Engine) -> TenantConnection:
        with Session(engine) as session:
            return next(c for c in enterprise_connections(session) if c.org_id == ENTERPRISE_ORG)

    def _analytics(self, engine: Engine, emulator: EmulatorServer) -> None:
        self.step(
            f"Skills analytics of {ENTERPRISE_TENANT} (Claude Enterprise): use in the Claude "
            "apps (30 days backfilled on a first run, then the last 7 read again)"
        )
        today = dt.datetime.now(dt.UTC).date()
        for back in (3, 2, 1):  # a day is served once it is over (the API's lag)
            emulator.state.generate_enterprise_invocations(
                ENTERPRISE_ORG, 10 + 5 * back, day=today - dt.timedelta(days=back)
            )
        conn = self._enterprise_connection(engine)
        done = asyncio.run(analytics_ingest(engine, conn, backfill_days=30))
        print(
            f"  {done.org_id}: {done.days} day(s) read, {done.inserted} row(s) stored, "
            f"{done.revised} revised" + (f", error: {done.error}" if done.error else "")
        )

    def _activity_repair(self, engine: Engine, emulator: EmulatorServer) -> None:
        self.step(
            f"Activity feed of {ENTERPRISE_TENANT}: a plugin deleted in claude.ai is repaired "
            "at once"
        )
        conn = self._enterprise_connection(engine)
        ours = asyncio.run(activity_ingest(engine, conn))
        print(
            f"  {ours.org_id}: {ours.inserted} activities stored (our own publish: no repair)"
            + (f", error: {ours.error}" if ours.error else "")
        )
        with Session(engine) as session:
            plugin = session.scalar(
                select(Publication.remote_skill_id)
                .join(Tenant, Tenant.id == Publication.tenant_id)
                .where(Tenant.slug == ENTERPRISE_TENANT, Publication.skill_id == DELETED_SKILL)
            )
        name = f"claresia-{ENTERPRISE_TENANT}-{DELETED_SKILL}"
        answer = httpx2.post(
            f"{emulator.base_url}/_emulator/orgs/{ENTERPRISE_ORG}/admin",
            json={"action": "delete_plugin", "plugin_id": plugin, "user_id": "user_ferretti_anna"},
        )
        if answer.status_code != 201:
            raise UserError(f"the emulator refused to delete {name}: {answer.text}")
        print(f"  an administrator deletes the plugin {name} in claude.ai")
        theirs = asyncio.run(activity_ingest(engine, conn))
        with engine.connect() as db:
            job_id = db.execute(
                text(
                    "SELECT repair_job_id FROM org_activity WHERE org_id = :org "
                    "AND repair_job_id IS NOT NULL ORDER BY created_at DESC LIMIT 1"
                ),
                {"org": ENTERPRISE_ORG},
            ).scalar()
        print(
            f"  {theirs.org_id}: {theirs.inserted} activity stored, "
            + (f"repair job {job_id} queued" if job_id else "no repair queued")
        )
        job = jobs.claim(engine, "demo", job_id) if job_id else None
        if job is not None:
            outcome = asyncio.run(
                job_run.run_job(engine, job, api_timeout=self.settings.api_timeout_s)
            )
            print(
                f"  repair job {outcome.job_id}: {outcome.status}, "
                f"{outcome.stats.get('created', 0)} created: {name} is back"
            )

    def _claude_code(self, engine: Engine) -> None:
        self.step(
            f"Claude Code of {ENTERPRISE_TENANT}'s engineers exports its OTLP logs to the "
            "daemon's receiver"
        )
        receiver = OtlpReceiver(engine, self.settings.telemetry)
        token = os.environ["CLARESIA_FERRETTI_OTLP_TOKEN"]
        prompts = [Prompt(name) for name in CLAUDE_CODE_SKILLS for _ in range(3)]
        with _served(receiver.app()) as port:
            url = f"http://127.0.0.1:{port}/v1/logs"
            statuses = export(url, token, prompts, pace=False)
        with engine.connect() as conn:
            stored = conn.execute(
                text("SELECT count(*) FROM claude_code_activation WHERE tenant_slug = :t"),
                {"t": ENTERPRISE_TENANT},
            ).scalar_one()
        print(
            f"  {len(prompts)} prompts in {len(statuses)} export(s) to {url}: HTTP "
            f"{', '.join(map(str, sorted(set(statuses))))}; {stored} activation(s) stored in all"
        )

    def _report(self, engine: Engine) -> None:
        self.step("Telemetry report (last 7 days, from the analyst views)")
        since = dt.datetime.now(dt.UTC) - dt.timedelta(days=7)
        with engine.connect() as conn:
            figures = skill_report(conn, since=since)
            per_source = source_report(conn, since=since.date())
            footer = conn.exec_driver_sql(
                "SELECT footer_md FROM telemetry_event WHERE status = 'failed' LIMIT 1"
            ).scalar()
        print(render(figures, "table"))  # plain: a wide table must not be wrapped by rich
        if footer:
            self.console.print("\n  a card footer, as Claude shows it under a failed run:")
            print(f"  {footer}")
        self.step("Every source per skill (telemetry report --by-source)")
        print(render_by_source(per_source, "table"))
        print("\n  a row of each source:")
        for name, has in SOURCES.items():
            rows = [f for f in per_source if has(f)]
            best = max(rows, key=_SOURCE_FIGURE[name][0], default=None)
            said = _SOURCE_FIGURE[name][1](best) if best else "nothing yet"
            where = f"{best.tenant_slug}/{best.skill_id or '(unnamed)'}" if best else ""
            print(f"  {name:<17} {where:<40} {said}")

    def _serve(self, engine: Engine) -> None:
        """The daemon with its Command Center, on the demo's database and emulator, until
        SIGINT/SIGTERM: a token made now, given by reference as every token is."""
        token = secrets.token_urlsafe(24)
        os.environ[CENTER_TOKEN_VAR] = token
        settings = self.settings.model_copy(
            update={
                "center_tokens": f"demo:operator:env:{CENTER_TOKEN_VAR}",
                "center_port": _free_or_any(CENTER_PORT),
                "ops_port": 0,
            }
        )

        async def serve() -> None:
            sock = bind(settings.center_host, settings.center_port)
            sock.listen()  # a browser opening the URL at once waits for uvicorn, not refused
            port = sock.getsockname()[1]
            print(
                f"\nCommand Center: http://{settings.center_host}:{port}/  (the daemon runs "
                "beside it on the demo's database and emulator; Ctrl-C stops both)\n"
                f"demo token: {token}",
                flush=True,
            )
            async with serving(make_center(engine, settings), sock):
                await run_daemon(engine, DaemonConfig.of(settings), settings)

        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C before the daemon took it over
            asyncio.run(serve())
        print("Command Center stopped.", flush=True)

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
            "  claresia-sync demo --serve           the same, then the Command Center stays up\n"
            "  claresia-sync status                 per tenant and organisation\n"
            "  claresia-sync telemetry report --format csv\n"
            "  the plan against a fresh emulator (its state lives in memory), in two shells:\n"
            f"    claresia-sync emulator --port {self.emulator_port}\n"
            f"    env {keys} claresia-sync republish --all --force --dry-run\n"
            "  docs/analytics.md                    tables, views and queries for analysts\n"
            "  README.md                            running the daemon, deployment",
            soft_wrap=True,
        )


# Per source: how its best row is chosen and said (the demo's "a row of each source").
_SOURCE_FIGURE: dict[
    str, tuple[Callable[[SourceFigures], float], Callable[[SourceFigures], str]]
] = {
    AUDIT_POLLER: (
        lambda f: f.audit_runs,
        lambda f: f"{f.audit_runs} runs, {f.audit_failures} failed (audit log)",
    ),
    CLAUDE_CODE_OTLP: (
        lambda f: f.claude_code_activations,
        lambda f: f"{f.claude_code_activations} activations in Claude Code (OTLP)",
    ),
    SKILLS_ANALYTICS: (
        lambda f: f.apps_invocations or 0,
        lambda f: (
            f"{f.apps_invocations} uses in the Claude apps, "
            f"${f.apps_overage_spend_usd or 0:.2f} overage (skills analytics)"
        ),
    ),
    ACTIVITY_FEED: (
        lambda f: f.lifecycle_events,
        lambda f: f"{f.lifecycle_events} lifecycle events (activity feed)",
    ),
}


@contextmanager
def _served(app: Any) -> Iterator[int]:
    """`app` served by uvicorn on a free loopback port, in a thread, for the block."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise UserError("the OTLP receiver did not start")
        time.sleep(0.01)
    try:
        yield int(sock.getsockname()[1])
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


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
    saved = {k: os.environ.get(k) for k in [*DEMO_KEYS, CENTER_TOKEN_VAR]}
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_demo(
    settings: Settings, console: Console, invocations: int = 250, serve: bool = False
) -> None:
    """The demo, printed on the command's `console` (`cli/demo.py`: the CLI's); with `serve`,
    the Command Center stays up after it until SIGINT/SIGTERM."""
    with _unchanged_env():
        Demo(settings, console, invocations, serve).run()
