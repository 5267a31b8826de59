"""Load: the daemon keeps its poll schedule and its publish-lag promise while a large audit
backlog drains (issue 8).

The world: ORGS organisations, each with one root tenant and sub-tenants on their own
workspaces (TENANTS in all), every tenant granted SKILLS skills, so TENANTS x SKILLS
publications. The emulator runs in its own process; the daemon is `claresia-sync run` as in
production, on a scratch database of the local PostgreSQL.

1. The daemon publishes everything (one job for all tenants): its duration.
2. The daemon is stopped; EVENTS invocation events are appended to the organisations' audit logs
   (the backlog); the daemon starts again and drains it while
   - a sampler reads each organisation's checkpoint age every second (time since the checkpoint
     last advanced or a poll confirmed it): the schedule is kept if it stays under the poll
     interval plus its jitter plus the time of one page;
   - every ONBOARD_EVERY seconds a new sub-tenant is onboarded (rows + one publish job, as the
     onboarding flow does): its publish lag, requested -> last skill live (seeds/002 promises
     p99 < 60 s).
3. After the drain, the telemetry rows are checked against the backlog: each event once.

    python -m bench.load                       # the issue's size: 500 tenants, 10,000
                                               # publications, 5 orgs, 1,000,000 events
    python -m bench.load --tenants 50 --events 50000 --interval 20   # a quick look
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx2
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from bench.common import machine
from bench.publish_setup import Emulator, catalog_rows, median, percentile, scratch_database
from claresia_sync.db.models import (
    Archetype,
    OrgConnection,
    SkillGrant,
    Tenant,
    WorkspaceMapping,
)

ROOT = Path(__file__).resolve().parent.parent
SPARE_WORKSPACES = 60  # per organisation, for tenants onboarded during the drain
JITTER_S = 5.0  # DaemonConfig.poll_jitter


def key_of(i: int) -> str:
    return f"sk-ant-admin01-load{i:04d}-" + "0" * 40


def world_seed(orgs: int, per_org: int) -> dict[str, Any]:
    """Each org: a workspace per tenant (and spares), one group, one user who sees them all."""
    out = []
    for i in range(orgs):
        workspaces = [f"wrkspc_l{i}_{j}" for j in range(per_org + SPARE_WORKSPACES)]
        out.append(
            {
                "id": f"org_load{i}",
                "name": f"Load {i}",
                "workspaces": [{"id": w, "name": w.replace("_", "-")} for w in workspaces],
                "rbac_groups": [{"id": f"rbac_group_l{i}", "name": "staff"}],
                "admin_keys": [{"key": key_of(i), "name": "load"}],
                "users": [
                    {
                        "id": f"user_l{i}",
                        "email": f"u{i}@load.example",
                        "workspaces": workspaces,
                        "rbac_groups": [f"rbac_group_l{i}"],
                    }
                ],
            }
        )
    return {"organizations": out}


def add_tenant(
    s: Session,
    slug: str,
    org: int,
    ws: int,
    parent: Tenant | None,
    skill_ids: list[str],
    base_url: str = "",
) -> Tenant:
    t = Tenant(slug=slug, display_name=slug, parent=parent)
    s.add(t)
    if parent is None:  # a root holds the organisation's connection
        os.environ[f"CLARESIA_LOAD_KEY_{org}"] = key_of(org)
        s.add(
            OrgConnection(
                tenant=t,
                org_id=f"org_load{org}",
                admin_key_ref=f"env:CLARESIA_LOAD_KEY_{org}",
                base_url=base_url,
            )
        )
    s.flush()
    s.add(WorkspaceMapping(org_id=f"org_load{org}", workspace_id=f"wrkspc_l{org}_{ws}", tenant=t))
    arch = Archetype(tenant=t, slug="staff", rbac_group_id=f"rbac_group_l{org}")
    arch.grants = [SkillGrant(skill_id=k) for k in skill_ids]
    s.add(arch)
    return t


def build_world(engine: Engine, base_url: str, orgs: int, per_org: int, skills: int) -> list[str]:
    rows = catalog_rows(skills)
    ids = [r.skill_id for r in rows]
    with Session(engine) as s:
        s.add_all(rows)
        s.flush()
        for i in range(orgs):
            root = add_tenant(s, f"l{i}", i, 0, None, ids, base_url)
            for j in range(1, per_org):
                add_tenant(s, f"l{i}-t{j}", i, j, root, ids)
        s.commit()
    return ids


class Daemon:
    """`claresia-sync run` in its own process, its log in a file."""

    def __init__(self, url: str, interval: float, log: Path) -> None:
        env = {**os.environ, "CLARESIA_DATABASE_URL": url}
        self._log = log.open("a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "claresia_sync", "run", "--ops-host", "127.0.0.1",
             "--ops-port", "0", "--poll-interval", str(interval)],
            env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip

    def peak_rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        self._log.close()
        return code


def one(engine: Engine, sql: str, **params: object) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


def insert_job(engine: Engine, tenant: str | None) -> int:
    with engine.begin() as conn:
        return int(
            conn.execute(
                text(
                    "INSERT INTO publish_job (tenant_id) "
                    "SELECT (SELECT id FROM tenant WHERE slug = :t) RETURNING id"
                ),
                {"t": tenant},
            ).scalar_one()
        )


def wait_job(engine: Engine, job: int, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = one(engine, "SELECT status FROM publish_job WHERE id = :j", j=job)
        if status not in ("queued", "running"):
            return str(status)
        time.sleep(0.5)
    raise SystemExit(f"publish job {job} not finished after {timeout:.0f} s")


_AGES = text(
    "SELECT org_id, EXTRACT(EPOCH FROM now() - greatest(updated_at, last_polled_at)), "
    "greatest(updated_at, last_polled_at) >= :since, last_polled_at FROM audit_checkpoint"
)


class Sampler(threading.Thread):
    """Every second: each organisation's checkpoint age, counted from the org's first poll
    after `since` (the restart: the time the daemon was down is not the schedule's); every
    5 s: rows stored."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(daemon=True)
        self.engine = engine
        self.stop = threading.Event()
        with engine.connect() as conn:
            self.since = conn.execute(text("SELECT now()")).scalar_one()
        self.first_poll_s: dict[str, float] = {}
        self.max_age: dict[str, float] = defaultdict(float)
        self.polls: dict[str, set[object]] = defaultdict(set)
        self.stored: list[tuple[float, int]] = []

    def run(self) -> None:
        start = time.monotonic()
        tick = 0
        while not self.stop.wait(1.0):
            now = time.monotonic() - start
            with self.engine.connect() as conn:
                for org, age, fresh, polled in conn.execute(_AGES, {"since": self.since}):
                    if fresh:
                        self.first_poll_s.setdefault(org, now)
                    if org in self.first_poll_s:
                        self.max_age[org] = max(self.max_age[org], float(age or 0))
                        self.polls[org].add(polled)
                if tick % 5 == 0:
                    n = conn.execute(text("SELECT count(*) FROM telemetry_event_id")).scalar_one()
                    self.stored.append((now, int(n)))
            tick += 1


def generate_backlog(emu: Emulator, orgs: int, events: int) -> float:
    start = time.perf_counter()
    chunk = 50_000
    with httpx2.Client(base_url=emu.base_url, timeout=600) as http:
        for i in range(orgs):
            left = events // orgs + (1 if i < events % orgs else 0)
            while left:
                n = min(chunk, left)
                http.post(
                    "/_emulator/invocations",
                    json={"org_id": f"org_load{i}", "count": n, "failure_rate": 0.1, "seed": left},
                ).raise_for_status()
                left -= n
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orgs", type=int, default=5)
    parser.add_argument("--tenants", type=int, default=500)
    parser.add_argument("--skills", type=int, default=20, help="skills granted to each tenant")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--interval", type=float, default=60.0, help="the daemon's poll interval")
    parser.add_argument("--onboard-every", type=float, default=10.0)
    parser.add_argument("--onboard-skills", type=int, default=20)
    parser.add_argument("--after-drain", type=int, default=2, help="poll intervals to watch after")
    parser.add_argument("--log", type=Path, default=Path("/tmp/claresia-load-daemon.log"))
    args = parser.parse_args()
    per_org = args.tenants // args.orgs
    args.log.unlink(missing_ok=True)

    with scratch_database() as engine, Emulator(args.orgs, world_seed(args.orgs, per_org)) as emu:
        url = engine.url.render_as_string(hide_password=False)
        skill_ids = build_world(engine, emu.base_url, args.orgs, per_org, args.skills)
        pubs = args.orgs * per_org * args.skills

        # 1. publish everything
        daemon = Daemon(url, args.interval, args.log)
        began = time.perf_counter()
        job = insert_job(engine, None)
        status = wait_job(engine, job, 3600)
        publish_all = time.perf_counter() - began
        live = one(engine, "SELECT count(*) FROM publication WHERE status = 'published'")
        assert daemon.stop() == 0

        # 2. the backlog, then the drain under onboarding
        gen_s = generate_backlog(emu, args.orgs, args.events)
        daemon = Daemon(url, args.interval, args.log)
        sampler = Sampler(engine)
        sampler.start()
        began = time.monotonic()
        onboarded: list[int] = []
        drained_at: float | None = None
        n = 0
        while True:
            stored = one(engine, "SELECT count(*) FROM telemetry_event_id")
            now = time.monotonic() - began
            if drained_at is None and stored >= args.events:
                drained_at = now
            if drained_at is not None and now > drained_at + args.after_drain * args.interval:
                break
            if now > 4 * 3600:
                raise SystemExit(f"backlog not drained after 4 h: {stored:,} rows")
            if now >= n * args.onboard_every:
                org = n % args.orgs
                slug = f"l{org}-new{n}"
                with Session(engine) as s:
                    root = s.query(Tenant).filter_by(slug=f"l{org}").one()
                    ws = per_org + n // args.orgs
                    add_tenant(s, slug, org, ws, root, skill_ids[: args.onboard_skills])
                    s.commit()
                onboarded.append(insert_job(engine, slug))
                n += 1
            time.sleep(0.5)
        for j in onboarded:
            wait_job(engine, j, 600)
        sampler.stop.set()
        sampler.join()
        rss = daemon.peak_rss_mib()
        assert daemon.stop() == 0

        with engine.connect() as conn:
            lags = [
                float(x)
                for x in conn.execute(
                    text("SELECT lag_seconds FROM publish_job WHERE id = ANY(:ids)"),
                    {"ids": onboarded},
                ).scalars()
            ]
        failed = one(
            engine,
            "SELECT count(*) FROM publish_job WHERE id = ANY(:ids) AND status <> 'succeeded'",
            ids=onboarded,
        )
        rows = one(engine, "SELECT count(*) FROM telemetry_event")
        distinct = one(engine, "SELECT count(DISTINCT event_id) FROM telemetry_event")
        quarantined = one(engine, "SELECT count(*) FROM telemetry_quarantine")

    assert drained_at is not None
    print(f"Machine: {machine()}; PostgreSQL 127.0.0.1:5432 (scratch database).")
    print(
        f"World: {args.orgs} organisations, {args.orgs * per_org} tenants, {pubs:,} publications; "
        f"poll interval {args.interval:g} s (+ up to {JITTER_S:g} s jitter)."
    )
    print()
    print("| measure | figure |")
    print("|---|---:|")
    print(f"| publish all ({pubs:,} publications), job {status} | {publish_all:.1f} s |")
    print(f"| publications live after it | {live:,} |")
    print(f"| backlog appended to the audit logs | {args.events:,} events in {gen_s:.0f} s |")
    print(
        f"| drain: all stored after | {drained_at:.0f} s "
        f"({args.events / drained_at:,.0f} events/s) |"
    )
    print(f"| rows stored / distinct event ids / backlog | {rows:,} / {distinct:,} / "
          f"{args.events:,} |")  # fmt: skip
    print(f"| quarantined | {quarantined} |")
    for org in sorted(sampler.max_age):
        print(
            f"| {org}: first poll after the restart / then max checkpoint age / polls ended | "
            f"{sampler.first_poll_s[org]:.0f} s / {sampler.max_age[org]:.1f} s / "
            f"{len(sampler.polls[org] - {None})} |"
        )
    print(
        f"| onboarding during the drain: {len(lags)} jobs, {failed} not succeeded; lag "
        f"p50 / p99 / max | {median(lags):.2f} / {percentile(lags, 99):.2f} / "
        f"{max(lags):.2f} s |"
    )
    print(f"| daemon peak RSS (VmHWM) during the drain | {rss:.0f} MiB |")
    print()
    print(
        "Rows stored over time (s: rows): "
        + ", ".join(
            f"{t:.0f}: {c:,}" for t, c in sampler.stored[:: max(1, len(sampler.stored) // 12)]
        )
    )
    if rows != args.events or distinct != rows:
        raise SystemExit("FAIL: telemetry rows do not match the backlog one to one")


if __name__ == "__main__":
    main()
