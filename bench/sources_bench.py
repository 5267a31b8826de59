"""Benchmarks of issue 16's telemetry sources (figures in bench/RESULTS.md, "Telemetry sources").

    .venv/bin/python -m bench.sources_bench otlp [REQUESTS] [PROMPTS_PER_REQUEST] [SENDERS]
    .venv/bin/python -m bench.sources_bench otlp-phases [REQUESTS] [PROMPTS_PER_REQUEST]
    .venv/bin/python -m bench.sources_bench analytics [DAYS] [SKILLS] [USERS] [GROUPS]
    .venv/bin/python -m bench.sources_bench analytics-normalise [ROUNDS]

`otlp`: the receiver in a process of its own (uvicorn, as the daemon serves it) on a fresh
database; Claude Code-shaped exports (protobuf, gzip; per prompt a user_prompt, a skill_activated
and one or two api_request records) sent by SENDERS concurrent clients; stored activations per
second, against a plain COPY of the same rows into a table shaped like `telemetry_event` (same
indexes) in the same run; the receiver's resident memory sampled as the export goes on.

`otlp-phases`: the receiver's CPU per activation phase by phase (decode, normalise, the store's
statements and commit), client and PostgreSQL backend, in one thread without HTTP.

`analytics`: the ingester (`telemetry.analytics.ingest_org`) backfilling DAYS days of SKILLS
skills x USERS users (and GROUPS rbac groups) from a synthetic reader that builds the API's rows
(the emulator aggregates in Python and would be what is measured); wall time, rows/s and the
process's peak memory.

`analytics-normalise`: the CPU time of `normalise_row` alone (no database, no reader) on a page
of 1,000 synthetic `user` rows, best of ROUNDS, in microseconds a row; and of `rest_of_row`
(what is left for `raw`) within it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from functools import partial
from typing import Any

import httpx2
import psycopg
import yaml
from sqlalchemy import text
from sqlalchemy.orm import Session

from bench.common import machine
from bench.telemetry_setup import _vm_hwm_mib, fresh_database
from claresia_sync.db import make_engine
from claresia_sync.emulator.claude_code import Prompt, encode, export_request
from claresia_sync.telemetry import otlp
from claresia_sync.telemetry.analytics import (
    AnalyticsPage,
    UsageContext,
    ingest_org,
    normalise_row,
    rest_of_row,
)
from claresia_sync.telemetry.load import COPY_COLUMNS
from claresia_sync.telemetry.normalise import AttributionContext, SkillRef
from claresia_sync.telemetry.settings import TelemetrySettings
from claresia_sync.tenancy import apply_tenants, parse_tenants

TOKEN = "bench-otlp-token-0123456789abcdef"
SKILL = "claresia-ferretti-prd-review"
TENANTS = """
version: 1
tenants:
  - slug: ferretti
    zero_retention: {attested_by: Bench <bench@example.com>, attested_at: 2026-11-20}
    otlp_token: env:BENCH_OTLP_TOKEN
    targets:
      claude-enterprise: {org_id: org_ferretti, admin_key: env:BENCH_KEY, base_url: "http://127.0.0.1:9"}
    archetypes: []
"""


def _tenants(url: str, groups: int = 0) -> None:
    data: dict[str, Any] = yaml.safe_load(TENANTS)
    data["tenants"][0]["archetypes"] = [
        {"slug": f"a{g}", "rbac_group": f"rbac_group_{g}", "grants": []} for g in range(groups)
    ]
    engine = make_engine(url)
    with Session(engine) as session:
        apply_tenants(session, parse_tenants(yaml.safe_dump(data), "bench.yaml"))
        session.commit()
    engine.dispose()


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _backends_cpu(engine: Any) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend on this database but the asking one (the
    server runs on this machine)."""
    with engine.connect() as conn:
        pids = conn.execute(
            text(
                "SELECT pid FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalars()
        out = {}
        for pid in pids:
            with contextlib.suppress(FileNotFoundError):  # gone meanwhile
                out[pid] = _cpu_s(pid)
    return out


def serve_otlp(url: str, port: int) -> None:
    import uvicorn

    from claresia_sync.telemetry.otlp_receiver import OtlpReceiver

    receiver = OtlpReceiver(make_engine(url), TelemetrySettings(), max_body_bytes=16 * 2**20)
    gc.freeze()  # as the daemon does once started (daemon/service.py)
    uvicorn.run(receiver.app(), host="127.0.0.1", port=port, log_level="warning", lifespan="off")


def bench_otlp(requests: int, prompts: int, senders: int) -> None:
    bodies = [
        encode(export_request([Prompt(SKILL)] * prompts, seed=i), "http/protobuf", True)
        for i in range(requests)
    ]
    records = sum(
        len(
            export_request([Prompt(SKILL)] * prompts, seed=i)
            .resource_logs[0]
            .scope_logs[0]
            .log_records
        )
        for i in range(min(requests, 3))
    ) / min(requests, 3)
    with fresh_database() as url:
        _tenants(url)
        port = _free_port()
        env = {**os.environ, "BENCH_OTLP_TOKEN": TOKEN}
        server = subprocess.Popen(
            [sys.executable, "-m", "bench.sources_bench", "serve-otlp", url, str(port)], env=env
        )
        endpoint = f"http://127.0.0.1:{port}/v1/logs"
        engine = make_engine(url)
        try:
            _wait_up(endpoint)
            cpu_before = _cpu_s(server.pid)
            db_before = _backends_cpu(engine)
            memory: list[tuple[int, float]] = []
            done = [0]

            def sample() -> None:
                while done[0] < requests:
                    memory.append((done[0], _rss_mib(server.pid)))
                    time.sleep(0.5)

            sampler = threading.Thread(target=sample, daemon=True)
            lock = threading.Lock()
            queue = list(enumerate(bodies))

            def send() -> None:
                with httpx2.Client(timeout=60) as client:
                    while True:
                        with lock:
                            if not queue:
                                return
                            _, (body, headers) = queue.pop()
                        answer = client.post(
                            endpoint,
                            content=body,
                            headers={**headers, "authorization": f"Bearer {TOKEN}"},
                        )
                        assert answer.status_code == 200, answer.status_code
                        with lock:
                            done[0] += 1

            started = time.perf_counter()
            sampler.start()
            threads = [threading.Thread(target=send) for _ in range(senders)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            receiver_s = time.perf_counter() - started
            db_cpu = sum(s - db_before.get(pid, 0.0) for pid, s in _backends_cpu(engine).items())
            with engine.connect() as conn:
                stored = conn.execute(text("SELECT count(*) FROM telemetry_event")).scalar_one()
            final_rss = _rss_mib(server.pid)
            server_cpu = _cpu_s(server.pid) - cpu_before
        finally:
            server.terminate()
            server.wait(10)
        copy_s, copy_db_cpu, copy_cpu = _plain_copy(engine, bodies)
        engine.dispose()
    total = requests * prompts
    assert stored == total, (stored, total)
    print(f"machine: {machine()}")
    print(
        f"{requests} exports x {prompts} prompts (~{records / prompts:.1f} records per prompt), "
        f"{senders} senders, protobuf + gzip"
    )
    print(
        f"receiver: {total} activations stored in {receiver_s:.2f}s = {total / receiver_s:,.0f}/s "
        f"({total * records / prompts / receiver_s:,.0f} log records/s received)"
    )
    print(
        f"receiver process CPU: {server_cpu:.2f}s = {server_cpu / total * 1e6:.0f} us per "
        f"activation ({server_cpu / receiver_s:.2f} cores)"
    )
    print(
        f"PostgreSQL CPU (backends, /proc): receiver's {db_cpu / total * 1e6:.0f} us per "
        f"activation ({db_cpu / receiver_s:.2f} cores)"
    )
    print(f"plain COPY of the same rows: {copy_s:.2f}s = {total / copy_s:,.0f} rows/s")
    print(
        f"plain COPY CPU per row: {copy_cpu / total * 1e6:.0f} us here (write_row), "
        f"{copy_db_cpu / total * 1e6:.0f} us in its PostgreSQL backend"
    )
    print(f"ratio receiver / COPY: {copy_s / receiver_s:.2f}")
    marks = [memory[int(len(memory) * f)] for f in (0.1, 0.5, 0.9)] if memory else []
    print(
        "receiver RSS (MiB) at exports done: "
        + ", ".join(f"{n}: {rss:.0f}" for n, rss in marks)
        + f", end: {final_rss:.0f}"
    )


def bench_otlp_phases(requests: int, prompts: int) -> None:
    """Where the receiver's CPU goes, phase by phase, in one thread without HTTP: gunzip +
    protobuf decode, normalising, then storing each export in its own transaction (as a writer
    does when it is alone): the event rows (`insert_events`), the usage statements
    (`otlp_usage.store`), the source state and commit; client thread CPU and the backend's CPU
    (/proc) per activation for each."""
    from claresia_sync.telemetry import otlp_usage
    from claresia_sync.telemetry.load import insert_events
    from claresia_sync.telemetry.otlp_receiver import OtlpReceiver

    bodies = [
        encode(export_request([Prompt(SKILL)] * prompts, seed=i), "http/protobuf", True)
        for i in range(requests)
    ]
    total = requests * prompts
    settings = TelemetrySettings()
    with fresh_database() as url:
        _tenants(url)
        engine = make_engine(url)
        with Session(engine) as session:
            scope = otlp.TenantScope.load(session, "ferretti", settings)
        cpu = time.thread_time()
        exports = [otlp.decode(b, h["content-type"], "gzip", 64 * 2**20) for b, h in bodies]
        decode_s = time.thread_time() - cpu
        cpu = time.thread_time()
        normalised = [otlp.normalise_request(e, scope, settings) for e in exports]
        normalise_s = time.thread_time() - cpu
        spent: dict[str, list[float]] = {}
        receiver = OtlpReceiver(engine, settings)

        def timed(name: str, backend: int, step: Any) -> None:
            before, cpu = _cpu_s(backend), time.thread_time()
            step()
            was = spent.setdefault(name, [0.0, 0.0])
            was[0] += time.thread_time() - cpu
            was[1] += _cpu_s(backend) - before

        for n in normalised:
            with engine.connect() as conn:
                dbapi = conn.connection.driver_connection
                assert dbapi is not None
                backend = dbapi.info.backend_pid
                timed(
                    "event ids + rows (insert_events)",
                    backend,
                    partial(insert_events, conn, n.rows),
                )
                timed(
                    "usage (otlp_usage.store)",
                    backend,
                    partial(otlp_usage.store, conn, n.activations, n.usage),
                )
                timed("commit", backend, conn.commit)
        with engine.begin() as conn:  # the same exports again, through the receiver's writer
            conn.execute(
                text(
                    "TRUNCATE telemetry_event_id, claude_code_prompt, "
                    "claude_code_activation CASCADE"
                )
            )
        meter = make_engine(url)
        backends, cpu = _backends_cpu(meter), time.thread_time()
        for n in normalised:
            receiver._store([("ferretti", n)])
        after = _backends_cpu(meter)
        spent["whole store (OtlpReceiver._store)"] = [
            time.thread_time() - cpu,
            sum(s - backends.get(pid, 0.0) for pid, s in after.items()),
        ]
        meter.dispose()
        engine.dispose()
    print(f"machine: {machine()}")
    print(f"{requests} exports x {prompts} prompts, one thread, no HTTP; per activation:")
    print(f"  gunzip + protobuf decode: {decode_s / total * 1e6:.1f} us")
    print(f"  normalising: {normalise_s / total * 1e6:.1f} us")
    for name, (client, backend_s) in spent.items():
        print(
            f"  {name}: client {client / total * 1e6:.1f} us, "
            f"PostgreSQL backend {backend_s / total * 1e6:.1f} us"
        )


def _plain_copy(
    engine: Any, bodies: list[tuple[bytes, dict[str, str]]]
) -> tuple[float, float, float]:
    """The same rows, normalised here, COPYed into a table like telemetry_event (indexes too):
    seconds, then CPU seconds of its PostgreSQL backend and of this thread."""
    with Session(engine) as session:
        scope = otlp.TenantScope.load(session, "ferretti", TelemetrySettings())
    rows = []
    for body, headers in bodies:
        request = otlp.decode(body, headers["content-type"], "gzip", 64 * 2**20)
        rows += otlp.normalise_request(request, scope, TelemetrySettings()).rows
    url = engine.url.render_as_string(hide_password=False).replace("+psycopg", "")
    with psycopg.connect(url) as conn:
        conn.execute(
            "CREATE TABLE bench_copy (LIKE telemetry_event INCLUDING DEFAULTS INCLUDING INDEXES)"
        )
        conn.commit()
        backend_cpu = _cpu_s(conn.info.backend_pid)
        started, cpu = time.perf_counter(), time.thread_time()
        with (
            conn.cursor() as cur,
            cur.copy(f"COPY bench_copy ({', '.join(COPY_COLUMNS)}) FROM STDIN") as copy,
        ):
            for r in rows:
                copy.write_row(tuple(r[c] for c in COPY_COLUMNS))
        conn.commit()
        took, cpu = time.perf_counter() - started, time.thread_time() - cpu
        return took, _cpu_s(conn.info.backend_pid) - backend_cpu, cpu


class SyntheticReader:
    """The API's rows of DAYS x SKILLS (x USERS, x GROUPS), built page by page."""

    def __init__(self, skills: int, users: int, groups: int) -> None:
        self.skills, self.users, self.groups = skills, users, groups
        self.pages = 0

    def _row(self, skill: int, extra: dict[str, str], uses: int) -> dict[str, Any]:
        cents = Decimal(uses * 37) / 10
        return {
            "skill_name": f"skill_{skill:05d}",
            "skill_display_name": f"claresia-ferretti-s{skill}",
            "invocation_count": uses,
            "distinct_user_count": 1 if "user_id" in extra else max(1, uses // 3),
            "chat_metrics": {"distinct_conversation_skill_used_count": uses // 2},
            "claude_code_metrics": {"distinct_session_skill_used_count": uses // 3},
            "cowork_metrics": {"distinct_session_skill_used_count": 0},
            "office_metrics": {
                k: {"distinct_session_skill_used_count": 0}
                for k in ("excel", "outlook", "powerpoint", "word")
            },
            "enable_count": None,
            "share_status": "organization",
            "estimated_overage_spend": str(cents),
            "attributed_list_price": str(cents * 2),
            "currency": "USD",
            **extra,
        }

    async def page(
        self, day: dt.date, group_by: str | None, cursor: str | None, limit: int
    ) -> AnalyticsPage:
        self.pages += 1
        per_skill = {None: 1, "user_id": self.users, "rbac_group_id": self.groups}[group_by]
        total = self.skills * per_skill
        start = int(cursor or 0)
        rows = []
        for i in range(start, min(start + limit, total)):
            skill, k = divmod(i, per_skill)
            extra = {}
            if group_by == "user_id":
                extra = {"user_id": f"user_{k:05d}"}
            elif group_by == "rbac_group_id":
                extra = {"rbac_group_id": f"rbac_group_{k}"}
            rows.append(self._row(skill, extra, 1 + (skill + k + day.day) % 5))
        end = start + len(rows)
        return AnalyticsPage(rows, str(end) if end < total else None)


def bench_analytics(days: int, skills: int, users: int, groups: int) -> None:
    with fresh_database() as url:
        _tenants(url, groups)
        engine = make_engine(url)
        reader = SyntheticReader(skills, users, groups)
        progress: list[tuple[float, int]] = []  # (seconds, days committed)
        done = threading.Event()

        def watch() -> None:  # the checkpoint moves once per committed day
            first: dt.date | None = None
            while not done.wait(2):
                with engine.connect() as conn:
                    day = conn.execute(
                        text("SELECT max(cursor_day) FROM telemetry_source")
                    ).scalar_one()
                if day is not None:
                    first = first or day
                    progress.append((time.perf_counter() - started, (day - first).days + 1))

        started = time.perf_counter()
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        result = asyncio.run(ingest_org(engine, reader, "org_ferretti", backfill_days=days))
        took = time.perf_counter() - started
        done.set()
        watcher.join()
        with engine.connect() as conn:
            stored = conn.execute(text("SELECT count(*) FROM skill_usage_daily")).scalar_one()
            size = conn.execute(
                text("SELECT pg_total_relation_size('skill_usage_daily')")
            ).scalar_one()
            layout = _layout(conn, stored)
        engine.dispose()
    rows = days * skills * (1 + users + groups)
    assert result.error is None and stored == rows, (result, stored, rows)
    print(f"machine: {machine()}")
    print(
        f"{days} days x {skills} skills x ({users} users + {groups} groups + 1): "
        f"{rows:,} rows, {reader.pages:,} pages of 1,000"
    )
    print(f"wall {took:.1f}s = {rows / took:,.0f} rows/s; peak RSS {_vm_hwm_mib():.0f} MiB")
    print(f"skill_usage_daily with its indexes: {size / 2**30:.2f} GiB = {size / stored:.0f} B/row")
    print(layout)
    if days >= 10:  # is the rate flat? seconds per day over each tenth of the run
        marks, last = [], (0.0, 0)
        for t, n in progress:
            if n >= last[1] + days // 10:
                marks.append(f"days {last[1] + 1}-{n}: {(t - last[0]) / (n - last[1]):.1f}")
                last = (t, n)
        print("seconds per day: " + "; ".join(marks))


def bench_analytics_normalise(rounds: int) -> None:
    skills, day = 500, dt.date(2026, 11, 29)
    rows = asyncio.run(SyntheticReader(skills, 1000, 10).page(day, "user_id", None, 1000)).rows
    published = {
        f"claresia-ferretti-s{i}": SkillRef(f"s{i}", None, "ferretti") for i in range(skills)
    }
    ctx = UsageContext(AttributionContext("org_ferretti", {}, published=published))
    ctx.parents["ferretti"] = None

    def normalised() -> list[dict[str, Any]]:
        out = [
            normalise_row(r, org_id="org_ferretti", day=day, breakdown="user", ctx=ctx).row
            for r in rows
        ]
        return [r for r in out if r is not None]

    stored = normalised()
    assert len(stored) == len(rows) and all(r["raw"] is None for r in stored)

    def best(work: Any) -> float:
        least = float("inf")
        for _ in range(rounds):
            started = time.process_time()
            work()
            least = min(least, time.process_time() - started)
        return least / len(rows) * 1e6

    print(f"machine: {machine()}")
    print(f"normalise_row: {best(normalised):.2f} us of CPU a row (best of {rounds})")
    rest = best(lambda: [rest_of_row(raw, row) for raw, row in zip(rows, stored, strict=True)])
    print(f"of it rest_of_row: {rest:.2f} us a row")


def _layout(conn: Any, rows: int) -> str:
    """Where a row's bytes go: heap, each index, and each column's average stored size."""
    size = {
        name: conn.execute(
            text("SELECT pg_relation_size(CAST(:n AS regclass))"), {"n": name}
        ).scalar_one()
        for name in conn.execute(
            text(
                "SELECT 'skill_usage_daily' UNION ALL SELECT indexrelid::regclass::text "
                "FROM pg_index WHERE indrelid = 'skill_usage_daily'::regclass"
            )
        ).scalars()
    }
    toast = conn.execute(
        text(
            "SELECT pg_total_relation_size('skill_usage_daily') "
            "- pg_relation_size('skill_usage_daily') - pg_indexes_size('skill_usage_daily')"
        )
    ).scalar_one()
    columns = list(
        conn.execute(
            text(
                "SELECT attname FROM pg_attribute WHERE attrelid = 'skill_usage_daily'::regclass "
                "AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
            )
        ).scalars()
    )
    # The names come from the catalog (plain identifiers of this table).
    avg = ", ".join(f"avg(pg_column_size({c}))" for c in columns)
    widths = conn.execute(text(f"SELECT {avg} FROM skill_usage_daily")).one()  # noqa: S608
    parts = [f"{name} {b / rows:.0f}" for name, b in size.items()] + [
        f"toast etc. {toast / rows:.0f}"
    ]
    cols = [f"{c} {w or 0:.1f}" for c, w in zip(columns, widths, strict=True)]
    return "bytes/row: " + ", ".join(parts) + "\ncolumn avg bytes: " + ", ".join(cols)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_up(endpoint: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx2.post(endpoint, content=b"", timeout=1).status_code == 401:
                return
        except httpx2.HTTPError:
            pass
        assert time.monotonic() < deadline, "the receiver did not start"
        time.sleep(0.1)


def _ints(args: list[str], defaults: list[int]) -> Iterator[int]:
    for i, default in enumerate(defaults):
        yield int(args[i]) if i < len(args) else default


if __name__ == "__main__":
    what, rest = sys.argv[1], sys.argv[2:]
    if what == "serve-otlp":
        serve_otlp(rest[0], int(rest[1]))
    elif what == "otlp":
        bench_otlp(*_ints(rest, [40, 250, 4]))
    elif what == "otlp-phases":
        bench_otlp_phases(*_ints(rest, [40, 250]))
    elif what == "analytics-normalise":
        bench_analytics_normalise(*_ints(rest, [9]))
    else:
        bench_analytics(*_ints(rest, [3, 500, 1000, 10]))
