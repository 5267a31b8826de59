"""Benchmarks (b) and (c): republish-all of 200 tenants x 50 skills, emulator latency 20 ms.

(b) the first run creates every skill: wall time against the ideal `calls x latency /
    concurrency` (what the API calls alone would take with `concurrency` always in flight);
(c) a second run with nothing changed: wall time and write calls (expected: zero).
Both run as production does: a job row (`INSERT ... DEFAULT VALUES`), claimed and run.

    python -m bench.publish_republish_all [--tenants 200] [--skills 50] [--latency-ms 20]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from sqlalchemy import text

from bench.common import machine
from bench.publish_setup import Emulator, build_world, scratch_database
from claresia_sync.publish import DEFAULT_CONCURRENCY, JobOutcome, desired, run_next_job


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=200)
    parser.add_argument("--skills", type=int, default=50)
    parser.add_argument("--latency-ms", type=float, default=20)
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    args = parser.parse_args()
    latency = args.latency_ms / 1000

    cpu: dict[str, float] = {}

    def republish_all() -> tuple[JobOutcome, float, dict[str, int]]:
        emu.reset_stats()
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO publish_job DEFAULT VALUES"))
        started, own, emulator = time.perf_counter(), time.process_time(), emu.cpu_seconds()
        outcome = asyncio.run(run_next_job(engine, concurrency=args.concurrency))
        wall = time.perf_counter() - started
        cpu["publisher"] = time.process_time() - own
        cpu["emulator"] = emu.cpu_seconds() - emulator
        assert outcome is not None and outcome.status == "succeeded", outcome.errors[:3]
        stats = emu.stats()
        return outcome, wall, {"total": stats["total"], "writes": stats["writes"]}

    with Emulator(args.tenants) as emu, scratch_database() as engine:
        build_world(engine, emu.base_url, args.tenants, args.skills)
        emu.latency(args.latency_ms)
        first, wall_b, calls_b = republish_all()
        cpu_b = dict(cpu)
        second, wall_c, calls_c = republish_all()
        desired._CACHE.clear()  # as in a fresh process (the CLI), not the daemon
        third, wall_cold, calls_cold = republish_all()

    n = args.tenants * args.skills
    assert first.stats["created"] == n and second.stats["unchanged"] == n
    assert third.stats["unchanged"] == n
    ideal = calls_b["total"] * latency / args.concurrency
    print(f"machine: {machine()}")
    print(
        f"(b) republish-all {args.tenants} tenants x {args.skills} skills, latency "
        f"{args.latency_ms:.0f} ms, concurrency {args.concurrency}: wall {wall_b:.1f} s, "
        f"{calls_b['total']} API calls, ideal {ideal:.1f} s, ratio {wall_b / ideal:.2f}x "
        f"(publish lag {first.stats['publish_lag_s']:.1f} s); CPU: publisher "
        f"{cpu_b['publisher']:.1f} s ({cpu_b['publisher'] / calls_b['total'] * 1000:.2f} ms/call), "
        f"emulator {cpu_b['emulator']:.1f} s ({cpu_b['emulator'] / calls_b['total'] * 1000:.2f} "
        "ms/call)"
    )
    print(
        f"(c) no-op republish-all of the same: wall {wall_c:.2f} s in a long-lived process "
        f"(the daemon: transpile results kept), {wall_cold:.2f} s cold (a fresh CLI process); "
        f"{calls_c['total']} and {calls_cold['total']} API calls, "
        f"{calls_c['writes']} and {calls_cold['writes']} write calls"
    )


if __name__ == "__main__":
    main()
