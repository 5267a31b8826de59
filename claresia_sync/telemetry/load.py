"""The load stage of telemetry (poll -> normalise -> load): writing `telemetry_event` rows by
the storage rules of its schema (see the 0001 migration).

`insert_events` is the one way to write rows: it records each event id in `telemetry_event_id`
(the global unique key) and writes only rows whose id was new, so a redelivered event is a no-op.
It makes the months' partitions first, so rows land in their month rather than the default one.

Rows go in bulk: COPY into a session-local staging table, then one statement inserts the new ids
and, joined on them, the new rows (measured: several times the rate of a multi-row INSERT with
RETURNING; see bench/RESULTS.md, "Telemetry").
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from claresia_sync.db.models import TelemetryEvent

# Every column but `ingested_at`, which the database sets (now(): the writing transaction).
COPY_COLUMNS: tuple[str, ...] = tuple(
    c.name for c in TelemetryEvent.__table__.columns if c.name != "ingested_at"
)
_RAW = COPY_COLUMNS.index("raw")
_COPY_VALUES = itemgetter(*COPY_COLUMNS)
STAGE = "telemetry_event_stage"
_CREATE_STAGE = (
    f"CREATE TEMP TABLE IF NOT EXISTS {STAGE} (LIKE telemetry_event INCLUDING DEFAULTS) "
    "ON COMMIT DELETE ROWS"
)
_COPY = f"COPY {STAGE} ({', '.join(COPY_COLUMNS)}) FROM STDIN"
# The id insert and the row insert in one statement: foreign keys are checked at its end.
_MOVE = """
WITH new AS (
    INSERT INTO telemetry_event_id (event_id, occurred_at)
    SELECT event_id, occurred_at FROM telemetry_event_stage
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id
)
INSERT INTO telemetry_event SELECT s.* FROM telemetry_event_stage s JOIN new USING (event_id)
"""


def ensure_partitions(conn: Connection | Session, occurred: Iterable[dt.datetime]) -> list[str]:
    """Make the monthly partitions that hold these instants (idempotent); their names."""
    utc = (t.astimezone(dt.UTC) for t in occurred)
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
    unique = list({r["event_id"]: r for r in reversed(rows)}.values())
    ensure_partitions(conn, {r["occurred_at"] for r in unique})
    sa_conn = conn.connection() if isinstance(conn, Session) else conn
    sa_conn.execute(text(_CREATE_STAGE))
    dbapi = sa_conn.connection.driver_connection
    assert dbapi is not None
    with dbapi.cursor() as cur:
        with cur.copy(_COPY) as copy:
            for r in unique:
                try:
                    values = _COPY_VALUES(r)  # a row of the normaliser has every column
                except KeyError:
                    values = tuple(r.get(c) for c in COPY_COLUMNS)
                if not isinstance(values[_RAW], str):
                    values = (*values[:_RAW], json.dumps(values[_RAW]), *values[_RAW + 1 :])
                copy.write_row(values)
        cur.execute(_MOVE)
        inserted: int = cur.rowcount
        cur.execute("DELETE FROM telemetry_event_stage")  # a 2nd call in this transaction
    return inserted
