"""Telemetry write rate through `insert_events` (pages of 100, one transaction per page).

Usage: CLARESIA_DATABASE_URL=postgresql+psycopg://... python -m bench.db_telemetry_bench [N]
Creates and drops its own database on that server.
"""

from __future__ import annotations

import datetime as dt
import secrets
import sys
import time
from decimal import Decimal

import psycopg
from sqlalchemy.engine import make_url

from claresia_sync.config import load_settings
from claresia_sync.db.engine import make_engine, normalize_url
from claresia_sync.db.migrate import upgrade
from claresia_sync.telemetry.load import insert_events


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    server = normalize_url(
        load_settings().database_url or "postgresql://postgres@127.0.0.1/postgres"
    )
    name = f"claresia_bench_{secrets.token_hex(4)}"
    admin = server.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    engine = make_engine(make_url(server).set(database=name))
    try:
        upgrade(engine)
        start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
        rows = [
            {
                "record_id": f"rec_{i:026d}",
                "event_id": f"evt_{i:026d}",
                "event_type": "skill.invoked",
                "status": "succeeded",
                "occurred_at": start + dt.timedelta(seconds=i),
                "org_id": "org_dainese",
                "workspace_id": "wrkspc_dainese_eng",
                "tenant_slug": "dainese-eng",
                "parent_tenant_slug": "dainese",
                "skill_id": "incident-postmortem",
                "cost_usd": Decimal("0.04"),
                "duration_ms": 2300,
                "raw": {"id": f"evt_{i:026d}", "type": "skill.invoked"},
            }
            for i in range(n)
        ]
        for label in ("new", "redelivered"):
            t0 = time.perf_counter()
            written = 0
            for page in range(0, n, 100):
                with engine.begin() as conn:
                    written += insert_events(conn, rows[page : page + 100])
            took = time.perf_counter() - t0
            print(f"{label}: {n} events, {written} written, {n / took:,.0f} events/s")
    finally:
        engine.dispose()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
