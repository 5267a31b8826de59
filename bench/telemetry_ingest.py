"""Ingest benchmark: a backlog of audit events, pages of 1,000, through the real poller process
(emulator in its own process, PostgreSQL on this machine), side by side with a plain COPY of the
same rows into the same tables, and the write path alone before/after the COPY staging.

    python -m bench.telemetry_ingest [--sizes 100000,1000000] [--page-size 1000]

Prints a Markdown section for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import time
from typing import Any

from sqlalchemy import Engine, insert, text
from sqlalchemy.dialects.postgresql import insert as pg_insert

from bench.common import cpu_s, machine
from bench.telemetry_setup import (
    emulator_process,
    fresh_database,
    generate,
    prime_database,
    prime_emulator,
    run_worker,
)
from claresia_sync.db import make_engine
from claresia_sync.db.models import TelemetryEvent, TelemetryEventId
from claresia_sync.telemetry.load import insert_events
from claresia_sync.telemetry.normalise import (
    AttributionContext,
    Owner,
    TelemetryRow,
    fn_telemetry_event,
)

RESET = "TRUNCATE telemetry_event_id, telemetry_event, telemetry_quarantine, audit_checkpoint"


def plain_copy(engine: Engine) -> tuple[int, float, float, float]:
    """Export what the poller wrote, empty the tables, COPY it back: rows, seconds, and the CPU
    seconds of this side (the COPY's client) and of its PostgreSQL backend."""
    raw = engine.raw_connection()
    try:
        conn = raw.driver_connection
        assert conn is not None
        bufs: dict[str, io.BytesIO] = {}
        with conn.cursor() as cur:
            for table in ("telemetry_event_id", "telemetry_event"):
                bufs[table] = io.BytesIO()
                out = f"COPY (SELECT * FROM {table}) TO STDOUT (FORMAT binary)"  # noqa: S608
                with cur.copy(out) as copy:
                    for chunk in copy:
                        bufs[table].write(chunk)
            rows = cur.execute("SELECT count(*) FROM telemetry_event").fetchone()
            cur.execute(RESET)
        conn.commit()
        backend = cpu_s(conn.info.backend_pid)
        started, cpu = time.perf_counter(), time.thread_time()
        with conn.cursor() as cur:
            for table in ("telemetry_event_id", "telemetry_event"):
                with cur.copy(f"COPY {table} FROM STDIN (FORMAT binary)") as copy:
                    copy.write(bufs[table].getvalue())
        conn.commit()
        seconds, cpu = time.perf_counter() - started, time.thread_time() - cpu
        backend = cpu_s(conn.info.backend_pid) - backend
    finally:
        raw.close()
    return (int(rows[0]) if rows else 0), seconds, cpu, backend


def _synthetic_rows(n: int) -> list[dict[str, Any]]:
    ctx = AttributionContext(
        "org_dainese",
        {"wrkspc_dainese_eng": Owner("dainese-eng", "dainese")},
        tenant_slugs=frozenset({"dainese", "dainese-eng"}),
    )
    base = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    rows = []
    for i in range(n):
        event = {
            "type": "skill.invoked",
            "id": f"evt_01BENCH{i:018d}",
            "created_at": (base + dt.timedelta(seconds=i)).isoformat(),
            "organization_id": "org_dainese",
            "workspace_id": "wrkspc_dainese_eng",
            "actor": {"type": "user", "user_id": "user_x", "email": "x@dainese.com"},
            "skill": {"id": "skill_01", "name": "claresia-dainese-eng-incident-postmortem"},
            "invocation": {
                "id": f"inv_{i}",
                "model": "claude-sonnet-4-5",
                "duration_ms": 1000 + i % 5000,
                "usage": {"input_tokens": 1200, "output_tokens": 800},
                "cost_usd": "0.0400",
            },
            "error": None,
        }
        verdict = fn_telemetry_event(event, ctx)
        assert isinstance(verdict, TelemetryRow)
        rows.append(verdict.values)
    return rows


def _legacy_insert(conn: Any, rows: list[dict[str, Any]]) -> int:
    """insert_events as it was before the COPY staging (multi-row INSERT ... RETURNING, then
    an executemany INSERT of the new rows), for the before/after figure."""
    keys = [{"event_id": r["event_id"], "occurred_at": r["occurred_at"]} for r in rows]
    new_ids = set(
        conn.execute(
            pg_insert(TelemetryEventId)
            .values(keys)
            .on_conflict_do_nothing(index_elements=["event_id"])
            .returning(TelemetryEventId.event_id)
        ).scalars()
    )
    fresh = [dict(r) for r in rows if r["event_id"] in new_ids]
    if fresh:
        conn.execute(insert(TelemetryEvent), fresh)
    return len(fresh)


def write_paths(engine: Engine, n: int, page: int) -> dict[str, float]:
    rows = _synthetic_rows(n)
    rates = {}
    for label, write in (
        ("before: INSERT ... RETURNING + executemany", _legacy_insert),
        ("after: COPY to staging + INSERT ... SELECT", insert_events),
    ):
        with engine.begin() as conn:
            conn.execute(text(RESET))
        started = time.perf_counter()
        for i in range(0, n, page):
            with engine.begin() as conn:
                write(conn, rows[i : i + page])
        rates[label] = n / (time.perf_counter() - started)
    with engine.begin() as conn:
        conn.execute(text(RESET))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--write-path-rows", type=int, default=100_000, help="0: skip it")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    lines = []
    with fresh_database() as url, emulator_process() as base:
        engine = make_engine(url)
        prime_database(engine, base)
        for size in sizes:
            with engine.begin() as conn:
                conn.execute(text(RESET))
            prime_emulator(base)
            t0 = time.perf_counter()
            generate(base, size)
            gen_s = time.perf_counter() - t0
            w = run_worker(url, args.page_size)
            assert w["error"] is None and w["inserted"] == size, w
            rate = w["inserted"] / w["seconds"]
            copy_rows, copy_s, copy_cpu, copy_db_cpu = plain_copy(engine)
            assert copy_rows == size
            copy_rate = copy_rows / copy_s
            per = 1e6 / size
            lines.append(
                f"| {size:,} | {w['pages']:,} | {w['seconds']:.1f} | {rate:,.0f} | "
                f"{copy_rate:,.0f} | {rate / copy_rate:.2f} | "
                f"{w['cpu_s'] * per:.0f} + {w['db_cpu_s'] * per:.0f} | "
                f"{copy_cpu * per:.1f} + {copy_db_cpu * per:.0f} | "
                f"{w['machine_busy_s'] * per:.0f} | {w['peak_rss_mib']:.0f} | {gen_s:.0f} |"
            )
            print(lines[-1], flush=True)
        paths = (
            write_paths(engine, args.write_path_rows, args.page_size)
            if args.write_path_rows
            else {}
        )
        engine.dispose()
    print()
    print(f"Machine: {machine()}; PostgreSQL on the same machine; page size {args.page_size}.")
    print()
    print(
        "| backlog | pages | poller s | poller events/s | plain COPY rows/s | ratio |"
        " poller CPU per event: process + its PostgreSQL backends (us) |"
        " plain COPY CPU per row: client + backend (us) |"
        " machine CPU per event during the poll (us; 2 cores, everyone's) |"
        " poller peak RSS MiB | (emulator generation s) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(lines))
    if not paths:
        return
    print()
    print(
        f"Write path alone, {args.write_path_rows:,} pre-normalised rows in pages of "
        f"{args.page_size}, one transaction per page:"
    )
    print()
    for label, r in paths.items():
        print(f"- {label}: {r:,.0f} rows/s")


if __name__ == "__main__":
    main()
