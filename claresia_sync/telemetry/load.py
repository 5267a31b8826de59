"""The load stage of telemetry (poll -> normalise -> load): writing `telemetry_event` rows by
the storage rules of its schema (see the 0001 migration).

`insert_events` is the one way to write rows: it records each event id in `telemetry_event_id`
(the global unique key) and writes only rows whose id was new, so a redelivered event is a no-op.
It makes the months' partitions first, so rows land in their month rather than the default one.

Rows go in bulk, in two statements: one inserts the batch's ids (`unnest` of two arrays) and
returns those that were new, then a binary COPY writes only the rows of those ids straight into
`telemetry_event` (the plain COPY's work plus the id table and the foreign key; no staging
table to write and read again). Binary: no text to format here nor to parse in the server but
`raw`'s JSON (see bench/RESULTS.md, "Telemetry sources").
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from operator import itemgetter
from typing import Any

from psycopg import adapt, postgres
from psycopg.pq import Format
from sqlalchemy import Connection, DateTime, Integer, Numeric, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from claresia_sync.db import binary_arrays
from claresia_sync.db.binary_arrays import text_array
from claresia_sync.db.models import TelemetryEvent

# Every column but `ingested_at`, which the database sets (now(): the writing transaction).
COPY_COLUMNS: tuple[str, ...] = tuple(
    c.name for c in TelemetryEvent.__table__.columns if c.name != "ingested_at"
)
_COPY_VALUES = itemgetter(*COPY_COLUMNS)
_COPY = f"COPY telemetry_event ({', '.join(COPY_COLUMNS)}) FROM STDIN (FORMAT BINARY)"


def _pg_type(column: Any) -> str:
    for sa_type, name in (
        (JSONB, "jsonb"),
        (Text, "text"),
        (DateTime, "timestamptz"),
        (Integer, "int4"),
        (Numeric, "numeric"),
    ):
        if isinstance(column.type, sa_type):
            return name
    raise TypeError(f"telemetry_event.{column.name}: {column.type} has no binary form here")


_COPY_OIDS = [
    postgres.types[_pg_type(TelemetryEvent.__table__.columns[c])].oid for c in COPY_COLUMNS
]


class _RawJsonb(adapt.Dumper):
    """`raw` in jsonb's binary form (a version byte, then the JSON text) from JSON text, as the
    normalisers make it, or from a dict."""

    format = Format.BINARY
    oid = postgres.types["jsonb"].oid

    def dump(self, obj: Any) -> bytes:
        return b"\x01" + (obj if isinstance(obj, str) else json.dumps(obj)).encode()


# Ids in sorted order: two writers inserting overlapping batches wait, they do not deadlock.
_NEW_IDS = """
INSERT INTO telemetry_event_id (event_id, occurred_at)
SELECT * FROM unnest(%b::text[], %b::timestamptz[])
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id
"""


def ensure_partitions(conn: Connection | Session, occurred: Iterable[dt.datetime]) -> list[str]:
    """Make the monthly partitions that hold these instants (idempotent); their names."""
    # An instant already in UTC (as the normalisers read the API's) is taken as it is: an
    # `astimezone` per row was a microsecond of the writer's ~8 per row.
    utc = (t if t.tzinfo is dt.UTC else t.astimezone(dt.UTC) for t in occurred)
    months = [dt.datetime(y, m, 1, tzinfo=dt.UTC) for y, m in {(u.year, u.month) for u in utc}]
    ensure = text("SELECT telemetry_event_ensure_partition(:at)")
    return [str(conn.execute(ensure, {"at": m}).scalar_one()) for m in sorted(months)]


def insert_events(conn: Connection | Session, rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert `telemetry_event` rows (dicts keyed by column) unless their event id is stored.

    Runs in the caller's transaction (write the audit checkpoint in the same one); returns how
    many rows were new. `raw` may be a dict or JSON text. Of rows sharing an event id within
    one call, the first is kept.
    """
    if not rows:
        return 0
    unique = {r["event_id"]: r for r in reversed(rows)}
    ensure_partitions(conn, {r["occurred_at"] for r in unique.values()})
    sa_conn = conn.connection() if isinstance(conn, Session) else conn
    dbapi = sa_conn.connection.driver_connection
    assert dbapi is not None
    ids = sorted(unique)
    with dbapi.cursor() as cur:
        binary_arrays.register(cur)
        cur.execute(_NEW_IDS, (text_array(ids), [unique[i]["occurred_at"] for i in ids]))
        new = {event_id for (event_id,) in cur.fetchall()}
        if not new:
            return 0
        cur.adapters.register_dumper(None, _RawJsonb)  # by oid, for this cursor only
        if len(new) < len(rows):  # in the caller's order, each new id once
            rows = [r for r in rows if r["event_id"] in new and unique[r["event_id"]] is r]
        with cur.copy(_COPY) as copy:
            copy.set_types(_COPY_OIDS)
            for r in rows:
                try:
                    values = _COPY_VALUES(r)  # a row of the normaliser has every column
                except KeyError:
                    values = tuple(r.get(c) for c in COPY_COLUMNS)
                copy.write_row(values)
    return len(new)
