"""Benchmarks of the claude-enterprise target (issue 15): (a) onboarding lag of a tenant with 50
skills at 50 ms emulator latency, p50/p99 over 20 runs; (c) a no-op republish of 10,000 skills
(200 tenants x 50 plugins): wall time and write calls (expected: zero).

Each tenant has its own Claude Enterprise organisation in the emulator (its own process); the
runs are what production does: a `publish_job` row, claimed and run by `run_next_job`.

    python -m bench.publish_enterprise [--runs 20] [--skills 50] [--latency-ms 50]
                                       [--tenants 200] [--noop-latency-ms 20] [--noop-runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import time
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from bench.common import backends_cpu, machine
from bench.publish_setup import (
    Emulator,
    catalog_rows,
    libpq_of,
    measure_onboarding,
    median,
    percentile,
    scratch_database,
)
from claresia_sync.api import sdk
from claresia_sync.db.models import (
    Archetype,
    SkillGrant,
    Tenant,
    TenantTarget,
    ZeroRetentionAttestation,
)
from claresia_sync.publish import DEFAULT_CONCURRENCY, run_next_job
from claresia_sync.release_store import cut_release


def key_of(i: int) -> str:
    return f"sk-ant-api01-bench{i:04d}-" + "0" * 40


def seed(orgs: int) -> dict[str, Any]:
    return {
        "organizations": [
            {
                "id": f"org_ent{i}",
                "name": f"Enterprise {i}",
                "claude_enterprise": True,
                "rbac_groups": [{"id": f"rbac_group_ent{i}", "name": "everyone"}],
                "admin_keys": [{"key": key_of(i), "name": "bench"}],
                "users": [
                    {
                        "id": f"user_ent{i}",
                        "email": f"u{i}@ent.example",
                        "rbac_groups": [f"rbac_group_ent{i}"],
                    }
                ],
            }
            for i in range(orgs)
        ]
    }


def build_world(engine: Engine, base_url: str, tenants: int, skills: int) -> None:
    """Tenants `et{i}` on claude-enterprise (attested), one archetype granted every skill."""
    rows = catalog_rows(skills)
    with Session(engine) as s:
        s.add_all(rows)
        s.flush()
        cut_release(s, by="bench", note="bench catalog")
        for i in range(tenants):
            os.environ[f"CLARESIA_BENCH_ENT_KEY_{i}"] = key_of(i)
            t = Tenant(slug=f"et{i}", display_name=f"Enterprise tenant {i}")
            s.add(t)
            s.flush()
            s.add(
                TenantTarget(
                    tenant_id=t.id,
                    kind="claude-enterprise",
                    org_id=f"org_ent{i}",
                    admin_key_ref=f"env:CLARESIA_BENCH_ENT_KEY_{i}",
                    base_url=base_url,
                )
            )
            s.add(
                ZeroRetentionAttestation(
                    tenant_id=t.id, attested_by="bench", attested_at=dt.date(2026, 11, 30)
                )
            )
            arch = Archetype(tenant_id=t.id, slug="staff", rbac_group_id=f"rbac_group_ent{i}")
            arch.grants = [SkillGrant(skill_id=r.skill_id) for r in rows]
            s.add(arch)
        s.commit()


def onboarding(args: argparse.Namespace) -> None:
    sdk.preload()  # as the daemon does at start: the first run must not pay the SDK's import
    with Emulator(args.runs, seed(args.runs)) as emu, scratch_database() as engine:
        build_world(engine, emu.base_url, args.runs, args.skills)
        emu.latency(args.latency_ms)
        slugs = [f"et{i}" for i in range(args.runs)]
        seen = measure_onboarding(engine, emu, slugs, args.skills, args.concurrency)
    lags = seen.lags
    print(
        f"(a) claude-enterprise onboarding {args.skills} skills, latency {args.latency_ms:.0f} ms, "
        f"concurrency {args.concurrency}, {args.runs} runs: p50 {percentile(lags, 50):.2f} s, "
        f"p99 {percentile(lags, 99):.2f} s, min {min(lags):.2f} s, max {max(lags):.2f} s; "
        f"{seen.calls[0]} API calls per onboarding",
        flush=True,
    )
    print(seen.cpu_line(), flush=True)


def no_op(args: argparse.Namespace) -> None:
    with Emulator(args.tenants, seed(args.tenants)) as emu, scratch_database() as engine:
        build_world(engine, emu.base_url, args.tenants, args.skills)

        libpq = libpq_of(engine)

        def republish_all() -> tuple[Any, float, dict[str, Any]]:
            emu.reset_stats()
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO publish_job DEFAULT VALUES"))
            backends, emulator = backends_cpu(libpq), emu.cpu_seconds()
            started, cpu = time.perf_counter(), time.process_time()
            outcome = asyncio.run(run_next_job(engine, concurrency=args.concurrency))
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu
            after = backends_cpu(libpq)
            assert outcome is not None and outcome.status == "succeeded", outcome.errors[:3]
            stats = emu.stats()
            return (
                outcome,
                wall,
                {
                    "total": stats["total"],
                    "writes": stats["writes"],
                    "cpu": cpu,
                    "emulator": emu.cpu_seconds() - emulator,
                    "backends": sum(c - backends.get(pid, 0.0) for pid, c in after.items()),
                },
            )

        first, wall_first, calls_first = republish_all()  # creates every plugin, no latency
        emu.latency(args.noop_latency_ms)
        n = args.tenants * args.skills
        assert first.stats["created"] == n
        walls = []
        for _ in range(args.noop_runs):  # the daemon's later runs: the same process, one by one
            second, wall, calls = republish_all()
            assert second.stats["unchanged"] == n and calls["writes"] == 0
            walls.append(wall)
            print(
                f"    no-op run: wall {wall:.2f} s; CPU: publisher {calls['cpu']:.2f} s, "
                f"emulator {calls['emulator']:.2f} s, PostgreSQL backends "
                f"{calls['backends']:.2f} s; load average {os.getloadavg()[0]:.2f}",
                flush=True,
            )
    print(
        f"(c) claude-enterprise no-op republish-all of {n} plugins ({args.tenants} tenants x "
        f"{args.skills}), latency {args.noop_latency_ms:.0f} ms, in one process after the first "
        f"run: wall {' / '.join(f'{w:.2f}' for w in walls)} s (median {median(walls):.2f} s), "
        f"{calls['total']} API calls, {calls['writes']} write calls "
        f"(the first run: {wall_first:.1f} s, {calls_first['total']} calls at 0 ms)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--skills", type=int, default=50)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--tenants", type=int, default=200)
    parser.add_argument("--noop-latency-ms", type=float, default=20)
    parser.add_argument("--noop-runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    parser.add_argument("--only", choices=["a", "c"], default=None)
    args = parser.parse_args()
    print(f"machine: {machine()}", flush=True)
    if args.only in (None, "a"):
        onboarding(args)
    if args.only in (None, "c"):
        no_op(args)


if __name__ == "__main__":
    main()
