"""Benchmark (a): onboarding lag of a tenant with 50 skills, emulator latency 50 ms.

Each of 20 runs onboards a new tenant (its own organisation) the way production does: a job row
is inserted, a worker claims and runs it; the lag is the job's `stats.publish_lag_s`
(requested -> last skill live with its ACL).

    python -m bench.publish_onboarding [--runs 20] [--skills 50] [--latency-ms 50]
"""

from __future__ import annotations

import argparse

from bench.common import machine
from bench.publish_setup import (
    Emulator,
    build_world,
    measure_onboarding,
    percentile,
    scratch_database,
)
from claresia_sync.publish import DEFAULT_CONCURRENCY


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--skills", type=int, default=50)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    args = parser.parse_args()

    with Emulator(args.runs) as emu, scratch_database() as engine:
        build_world(engine, emu.base_url, args.runs, args.skills)
        emu.latency(args.latency_ms)
        slugs = [f"bt{i}" for i in range(args.runs)]
        seen = measure_onboarding(engine, emu, slugs, args.skills, args.concurrency)
    lags = seen.lags
    print(f"machine: {machine()}")
    print(
        f"onboarding {args.skills} skills, latency {args.latency_ms:.0f} ms, concurrency "
        f"{args.concurrency}, {args.runs} runs: p50 {percentile(lags, 50):.2f} s, "
        f"p99 {percentile(lags, 99):.2f} s, min {min(lags):.2f} s, max {max(lags):.2f} s; "
        f"{seen.calls[0]} API calls per onboarding"
    )
    print(seen.cpu_line())


if __name__ == "__main__":
    main()
