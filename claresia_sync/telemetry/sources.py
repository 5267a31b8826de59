"""The telemetry sources of real organisations and where each stands (`telemetry_source`).

One row per (source, organisation): the source's checkpoint, locked and written in the
transaction of the rows it covers (`lock`), and its last run (`record_run`), which `status`,
`/metrics` and `/readyz` read (`source_states`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, text

AUDIT_POLLER = "audit-poller"  # its checkpoint is `audit_checkpoint`, not a row here
SKILLS_ANALYTICS = "skills-analytics"
ACTIVITY_FEED = "activity-feed"
CLAUDE_CODE_OTLP = "claude-code-otlp"

_ENSURE = text(
    "INSERT INTO telemetry_source (source, org_id) VALUES (:source, :org) ON CONFLICT DO NOTHING"
)
_LOCK = text(
    "SELECT cursor, cursor_day, backfill_cursor FROM telemetry_source "
    "WHERE source = :source AND org_id = :org FOR UPDATE"
)
_RECORD = text("""
UPDATE telemetry_source SET last_run_at = now(), last_rows = :rows, last_error = :error,
       last_success_at = CASE WHEN CAST(:error AS text) IS NULL THEN now()
                              ELSE last_success_at END,
       errors_total = errors_total + CASE WHEN CAST(:error AS text) IS NULL THEN 0 ELSE 1 END,
       latest_available_day = coalesce(CAST(:latest AS date), latest_available_day)
 WHERE source = :source AND org_id = :org
""")


@dataclass(frozen=True)
class SourceSettings:
    """How the sources of Claude Enterprise organisations read (from `config.Settings`)."""

    analytics_window_days: int = 7
    analytics_backfill_days: int = 30
    analytics_breakdowns: tuple[str, ...] = ("user", "rbac_group")
    activity_backfill_days: int = 30


@dataclass(frozen=True)
class Checkpoint:
    cursor: str | None
    cursor_day: dt.date | None
    backfill_cursor: str | None


def lock(conn: Connection, source: str, org_id: str) -> Checkpoint:
    """The checkpoint of `source` for `org_id`, locked until the caller's transaction ends."""
    conn.execute(_ENSURE, {"source": source, "org": org_id})
    row = conn.execute(_LOCK, {"source": source, "org": org_id}).one()
    return Checkpoint(row.cursor, row.cursor_day, row.backfill_cursor)


def read(engine: Engine, source: str, org_id: str) -> Checkpoint:
    with engine.begin() as conn:
        return lock(conn, source, org_id)


_ADVANCE = text("""
UPDATE telemetry_source SET
    cursor = CASE WHEN :set_cursor THEN CAST(:cursor AS text) ELSE cursor END,
    cursor_day = CASE WHEN :set_cursor_day THEN CAST(:cursor_day AS date) ELSE cursor_day END,
    backfill_cursor = CASE WHEN :set_backfill_cursor THEN CAST(:backfill_cursor AS text)
                           ELSE backfill_cursor END,
    newest_data_at = CASE WHEN :set_newest_data_at
                          THEN CAST(:newest_data_at AS timestamptz) ELSE newest_data_at END
 WHERE source = :source AND org_id = :org
""")
_ADVANCED = ("cursor", "cursor_day", "backfill_cursor", "newest_data_at")


def advance(conn: Connection, source: str, org_id: str, **values: object) -> None:
    """Set checkpoint columns (`cursor`, `cursor_day`, `backfill_cursor`, `newest_data_at`) in
    the caller's transaction (after `lock`); a column not named keeps its value."""
    unknown = set(values) - set(_ADVANCED)
    if unknown:
        raise ValueError(f"not checkpoint columns: {sorted(unknown)}")
    params: dict[str, object] = {"source": source, "org": org_id}
    for name in _ADVANCED:
        params[f"set_{name}"] = name in values
        params[name] = values.get(name)
    conn.execute(_ADVANCE, params)


def record_run(
    engine: Engine,
    source: str,
    org_id: str,
    *,
    rows: int,
    error: str | None,
    latest_available_day: dt.date | None = None,
) -> None:
    """The outcome of one run (status and /metrics read it)."""
    with engine.begin() as conn:
        conn.execute(_ENSURE, {"source": source, "org": org_id})
        conn.execute(
            _RECORD,
            {
                "source": source,
                "org": org_id,
                "rows": rows,
                "error": error,
                "latest": latest_available_day,
            },
        )


@dataclass(frozen=True)
class SourceState:
    source: str
    org_id: str
    last_run_at: dt.datetime | None
    last_success_at: dt.datetime | None
    last_error: str | None
    lag_seconds: float | None
    """now - the newest instant the stored data covers."""
    errors_total: int


_STATES = text("""
SELECT source, org_id, last_run_at, last_success_at, last_error, errors_total,
       EXTRACT(EPOCH FROM now() - newest_data_at) AS lag
  FROM telemetry_source ORDER BY source, org_id
""")


def source_states(conn: Connection) -> list[SourceState]:
    return [
        SourceState(
            r.source,
            r.org_id,
            r.last_run_at,
            r.last_success_at,
            r.last_error,
            None if r.lag is None else float(r.lag),
            r.errors_total,
        )
        for r in conn.execute(_STATES)
    ]
