"""Freshness benchmark: time from an audit event's creation to its telemetry row, p50/p95/max,
with the poll on a fixed schedule (the daemon's 60 s interval, simulated here: a loop that
starts `poll_once` every INTERVAL seconds in one long-lived process, as the daemon does).

Events arrive steadily (RATE per second, in small batches) through the emulator's control route
while the schedule runs. For every row two ages are taken on the database's clock:
- from visibility: `ingested_at` minus the time in the event's ULID id, i.e. when the emulator
  made it visible to the audit API (what the poller can be held to: aim interval + 1 s);
- from `created_at`: the emulator backdates `created_at` by 0-3 s to mimic the audit log's own
  ingestion lag, which no poller can see.
`ingested_at` is the start of the page's transaction; its commit follows within the page write
time (tens of ms), reported alongside.

    python -m bench.telemetry_freshness [--interval 60] [--polls 5] [--rate 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import threading
import time

import httpx2
from sqlalchemy import text
from ulid import ULID

from bench.common import machine
from bench.telemetry_setup import (
    DAINESE_KEY,
    ORG,
    emulator_process,
    fresh_database,
    prime_database,
    prime_emulator,
)
from claresia_sync.db import make_engine
from claresia_sync.telemetry.poller import poll_once


def _produce(base: str, rate: float, stop: threading.Event) -> None:
    tick = 0.2
    per_tick = max(1, round(rate * tick))
    with httpx2.Client(base_url=base, timeout=30) as http:
        next_at = time.monotonic()
        while not stop.is_set():
            http.post(
                "/_emulator/invocations",
                json={"org_id": ORG, "count": per_tick, "failure_rate": 0.1},
            ).raise_for_status()
            next_at += tick
            stop.wait(max(0.0, next_at - time.monotonic()))


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--interval", type=float, default=60.0)
    parser.add_argument("--polls", type=int, default=5)
    parser.add_argument("--rate", type=float, default=20.0, help="events per second")
    args = parser.parse_args()
    os.environ["CLARESIA_DAINESE_ADMIN_KEY"] = DAINESE_KEY
    with fresh_database() as url, emulator_process() as base:
        engine = make_engine(url)
        prime_database(engine, base)
        prime_emulator(base)
        stop = threading.Event()
        producer = threading.Thread(target=_produce, args=(base, args.rate, stop), daemon=True)
        # The first poll drains nothing; events then arrive through `polls` full intervals.
        asyncio.run(poll_once(engine, tenant="dainese"))
        producer.start()
        durations = []
        start = time.monotonic()
        for n in range(1, args.polls + 1):
            time.sleep(max(0.0, start + n * args.interval - time.monotonic()))
            if n == args.polls:
                stop.set()
                producer.join()
            began = time.perf_counter()
            (result,) = asyncio.run(poll_once(engine, tenant="dainese"))
            durations.append(time.perf_counter() - began)
            assert result.error is None, result.error
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT event_id, occurred_at, ingested_at FROM telemetry_event")
            ).all()
        engine.dispose()
    from_visible = [
        r.ingested_at.timestamp() - ULID.from_str(r.event_id.removeprefix("evt_")).timestamp
        for r in rows
    ]
    from_created = [(r.ingested_at - r.occurred_at).total_seconds() for r in rows]
    print(
        f"Machine: {machine()}. Schedule every {args.interval:g} s, {args.polls} polls, "
        f"{args.rate:g} events/s arriving steadily; {len(rows):,} events."
    )
    print()
    print("| age of a row at ingestion | p50 s | p95 s | max s |")
    print("|---|---:|---:|---:|")
    for label, ages in (
        ("from visibility in the audit API", from_visible),
        ("from `created_at` (incl. 0-3 s emulated audit lag)", from_created),
    ):
        print(
            f"| {label} | {statistics.median(ages):.1f} | {_pct(ages, 0.95):.1f} | "
            f"{max(ages):.1f} |"
        )
    print()
    print(f"Poll durations (s): {', '.join(f'{d:.2f}' for d in durations)}")


if __name__ == "__main__":
    main()
