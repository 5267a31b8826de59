"""Storage rules of `telemetry_event` that belong with its schema (see the 0001 migration).

`insert_events` is the one way to write rows: it records each event id in `telemetry_event_id`
(the global unique key) and writes only rows whose id was new, so a redelivered event is a no-op.
It makes the months' partitions first, so rows land in their month rather than the default one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, insert, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from claresia_sync.db.models import TelemetryEvent, TelemetryEventId


def ensure_partitions(conn: Connection | Session, occurred: Iterable[dt.datetime]) -> list[str]:
    """Make the monthly partitions that hold these instants (idempotent); their names."""
    months = {
        t.astimezone(dt.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        for t in occurred
    }
    ensure = text("SELECT telemetry_event_ensure_partition(:at)")
    return [str(conn.execute(ensure, {"at": m}).scalar_one()) for m in sorted(months)]


def insert_events(conn: Connection | Session, rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert `telemetry_event` rows (dicts keyed by column) unless their event id is stored.

    Runs in the caller's transaction (write the audit checkpoint in the same one); returns how
    many rows were new. Rows must have distinct event ids.
    """
    if not rows:
        return 0
    ensure_partitions(conn, (r["occurred_at"] for r in rows))
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
