"""Rollback of one skill across N tenants (issue 22): the time from `rollout rollback` to the
last write, and per tenant (p50/p99), at an emulator latency of 50 ms.

The world of bench/publish_setup.py (N organisations, one root tenant each, S skills), all
published on release 1; release 2 changes one skill; a one-wave rollout moves every tenant to
it (jobs run, the rollout's step completes it). Then, at 50 ms per API call, the rollback
(`rollout.state.rollback`, what `rollout rollback` runs) queues one publish job per tenant and
`--workers` workers drain the queue as the daemon's job workers do (`run_next_job`; a daemon
has `--publish-workers`, default 2, per replica). Per tenant: from the rollback's commit to the
tenant's last `publication_history` row of its rollback job (the write recorded).

    python -m bench.rollout_rollback [--tenants 500] [--skills 5] [--latency-ms 50] [--workers 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

from sqlalchemy import Engine, select, text, update
from sqlalchemy.orm import Session

from bench.common import machine
from bench.publish_setup import Emulator, build_world, scratch_database
from claresia_sync.db.models import CatalogSkill
from claresia_sync.ir import canonical_hash
from claresia_sync.publish import run_next_job
from claresia_sync.release_store import cut_release
from claresia_sync.rollout import advance, state
from claresia_sync.rollout.plan import parse_plan

ONE_WAVE = "guardrails: {min_invocations: 0}\nwaves: [{name: all, share: 100%, soak: 0s}]\n"


async def drain(engine: Engine, workers: int) -> int:
    """Run queued jobs with `workers` at once until none is left; how many ran."""
    ran = 0

    async def worker() -> None:
        nonlocal ran
        while (outcome := await run_next_job(engine, worker="bench")) is not None:
            assert outcome.status == "succeeded", (outcome.job_id, outcome.errors[:2])
            ran += 1

    await asyncio.gather(*(worker() for _ in range(workers)))
    return ran


def pct(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=500)
    parser.add_argument("--skills", type=int, default=5)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()

    with Emulator(args.tenants) as emu, scratch_database() as engine:
        build_world(engine, emu.base_url, args.tenants, args.skills)
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO publish_job DEFAULT VALUES"))
        asyncio.run(drain(engine, args.workers))
        with Session(engine) as s:  # release 2: one skill's summary changed, held
            skill = s.scalars(select(CatalogSkill).order_by(CatalogSkill.skill_id)).first()
            assert skill is not None
            ir = {**skill.ir, "summary": skill.ir["summary"] + " (release two)"}
            s.execute(
                update(CatalogSkill)
                .where(CatalogSkill.skill_id == skill.skill_id)
                .values(ir=ir, ir_hash=canonical_hash(ir))
            )
            assert cut_release(s, by="bench", hold=True) == 2
            rollout = state.start(s, 2, parse_plan(ONE_WAVE, "bench"), source="bench", by="bench")
            rollout_id = rollout.id
            s.commit()
        asyncio.run(drain(engine, args.workers))
        step = advance.advance(engine)
        assert step is not None and step.event == "completed", step

        emu.latency(args.latency_ms)
        emu.reset_stats()
        started = time.perf_counter()
        with Session(engine) as s:
            found = state.require_rollout(s, rollout_id, lock=True)
            back = state.rollback(s, found, "bench")
            s.commit()
        ran = asyncio.run(drain(engine, args.workers))
        wall = time.perf_counter() - started
        load = os.getloadavg()
        with engine.connect() as conn:
            per_tenant = [
                float(r[0])
                for r in conn.execute(
                    text(
                        "SELECT EXTRACT(EPOCH FROM max(h.at) - r.finished_at) "
                        "FROM rollout_tenant rt JOIN rollout r ON r.id = rt.rollout_id "
                        "JOIN publication_history h ON h.job_id = rt.rollback_job_id "
                        "WHERE rt.rollout_id = :r GROUP BY rt.tenant_id, r.finished_at"
                    ),
                    {"r": rollout_id},
                )
            ]
            updated = conn.execute(
                text(
                    "SELECT count(*) FROM publication_history h JOIN rollout_tenant rt "
                    "ON h.job_id = rt.rollback_job_id WHERE h.action = 'updated'"
                )
            ).scalar_one()
        stats = emu.stats()

    assert len(back) == ran == args.tenants and len(per_tenant) == args.tenants
    assert updated == args.tenants  # one skill, one new version each
    print(f"machine: {machine()}")
    print(
        f"rollback of 1 skill across {args.tenants} tenants ({args.skills} skills each), "
        f"latency {args.latency_ms:.0f} ms, {args.workers} job workers: last write "
        f"{max(per_tenant):.1f} s after the rollback (wall to the queue drained {wall:.1f} s); "
        f"per tenant p50 {pct(per_tenant, 50):.1f} s, p99 {pct(per_tenant, 99):.1f} s; "
        f"{stats['total']} API calls, {stats['writes']} writes; "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )


if __name__ == "__main__":
    main()
