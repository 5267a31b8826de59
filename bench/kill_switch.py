"""The kill switch on 500 tenants (issue 22; aim: p99 under 10 s at 50 ms API latency).

The world of bench/publish_setup.py (one org-skills organisation per tenant, `--skills` skills
each), published first at no latency. Then, at `--latency-ms`, optionally while a forced
republish-all runs (`--with-running-job`: the kill switch must make it yield), the command an
operator types: `claresia-sync skill disable SKILL --reason ...` in its own process. Per tenant:
from the moment the command is started to the answer of the last write to its organisation (the
emulator's `last_write_at`); p50 / p99 / max over the tenants, the command's wall time, and the
load average.

    python -m bench.kill_switch [--tenants 500] [--skills 5] [--latency-ms 50] [--with-running-job]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import threading
import time

from sqlalchemy import text

from bench.common import machine
from bench.publish_setup import ROOT, Emulator, build_world, scratch_database
from claresia_sync.publish import DEFAULT_CONCURRENCY, run_next_job


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=500)
    parser.add_argument("--skills", type=int, default=5)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    parser.add_argument("--with-running-job", action="store_true")
    args = parser.parse_args()

    with Emulator(args.tenants) as emu, scratch_database() as engine:
        build_world(engine, emu.base_url, args.tenants, args.skills)
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO publish_job DEFAULT VALUES"))
            skill = conn.execute(text("SELECT min(skill_id) FROM catalog_skill")).scalar_one()
        first = asyncio.run(run_next_job(engine, concurrency=args.concurrency))
        assert first is not None and first.status == "succeeded", first
        emu.latency(args.latency_ms)

        running = None
        if args.with_running_job:
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO publish_job (force) VALUES (true)"))

            def republish() -> None:
                asyncio.run(run_next_job(engine, concurrency=args.concurrency))

            running = threading.Thread(target=republish, daemon=True)
            running.start()
            time.sleep(3)  # under way, holding every tenant's lock

        env = {k: v for k, v in os.environ.items() if not k.startswith("CLARESIA_")}
        env.update({k: v for k, v in os.environ.items() if k.startswith("CLARESIA_BENCH_KEY_")})
        env["CLARESIA_DATABASE_URL"] = engine.url.render_as_string(hide_password=False)
        emu.reset_stats()
        load = os.getloadavg()
        started = time.time()
        done = subprocess.run(
            [sys.executable, "-m", "claresia_sync", "skill", "disable", skill, "--reason",
             "bench", "--concurrency", str(args.concurrency)],
            env=env, cwd=ROOT, capture_output=True, text=True, check=False,
        )  # fmt: skip
        wall = time.time() - started
        assert done.returncode == 0, done.stderr
        written = emu.stats()["last_write_at"]
        with engine.connect() as conn:
            gone = conn.execute(
                text("SELECT count(*) FROM publication WHERE skill_id = :s AND status = :off"),
                {"s": skill, "off": "unpublished"},
            ).scalar_one()
        if running is not None:
            running.join(timeout=600)
    lags = [at - started for at in written.values()]
    assert len(lags) == gone == args.tenants, f"{len(lags)} orgs written, {gone} unpublished"
    print(f"machine: {machine()}")
    print(
        f"kill switch of one skill on {args.tenants} tenants ({args.skills} skills each), "
        f"latency {args.latency_ms:.0f} ms, concurrency {args.concurrency}"
        f"{', a forced republish-all running' if args.with_running_job else ''}: "
        f"per tenant p50 {_pct(lags, 0.5):.2f} s, p99 {_pct(lags, 0.99):.2f} s, "
        f"max {max(lags):.2f} s (mean {statistics.mean(lags):.2f} s); command wall "
        f"{wall:.2f} s; load average before {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}, "
        f"after {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
