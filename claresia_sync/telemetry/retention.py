"""Retention: remove telemetry older than `retention_days` (default 365), cheaply at any size.

Rows are never deleted one by one from `telemetry_event`: a month's partition is dropped whole
once all of it is older than the cutoff (O(1), whatever the month holds). What is left is
proportional to the month removed, not to the table: that month's ids in `telemetry_event_id`
(deleted in batches through its `occurred_at` index, one short transaction each, so neither
locks nor WAL pile up) and any stray rows of the default partition. A run that dies halfway is
finished by the next one. Claude Code usage that found no activation within its wait goes too
(`otlp_usage.sweep`). Run it daily (the daemon does; or `claresia-sync telemetry retention`).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from sqlalchemy import Engine, text

from claresia_sync.telemetry import otlp_usage
from claresia_sync.telemetry.settings import DEFAULT_RETENTION_DAYS, DEFAULT_USAGE_WAIT_HOURS

_PARTITION = re.compile(r"^telemetry_event_(\d{4})_(\d{2})$")
_PARTITIONS = text(
    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
    "WHERE i.inhparent = 'telemetry_event'::regclass ORDER BY 1"
)
_DELETE_IDS = text(
    "DELETE FROM telemetry_event_id WHERE event_id IN (SELECT event_id FROM telemetry_event_id"
    " WHERE occurred_at < :bound ORDER BY occurred_at LIMIT :batch)"
)
# The default partition may hold rows of months that had no partition yet (normally none).
_DELETE_DEFAULT = text("DELETE FROM telemetry_event_default WHERE occurred_at < :bound")


@dataclass
class RetentionResult:
    cutoff: dt.datetime
    bound: dt.datetime
    """Everything before this instant (the start of the cutoff's month) is removed."""
    dropped_partitions: list[str] = field(default_factory=list)
    deleted_default_rows: int = 0
    deleted_ids: int = 0
    claude_code: otlp_usage.Swept = field(default_factory=otlp_usage.Swept)
    """Claude Code usage unmatched past its wait, or before the bound (`otlp_usage.sweep`)."""


def month_start(at: dt.datetime) -> dt.datetime:
    return at.astimezone(dt.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _month_end(year: int, month: int) -> dt.datetime:
    return dt.datetime(year + month // 12, month % 12 + 1, 1, tzinfo=dt.UTC)


def apply_retention(
    engine: Engine,
    retention_days: int = DEFAULT_RETENTION_DAYS,
    *,
    now: dt.datetime | None = None,
    batch: int = 50_000,
    dry_run: bool = False,
    usage_wait_hours: int = DEFAULT_USAGE_WAIT_HOURS,
) -> RetentionResult:
    """Drop the monthly partitions entirely older than `now - retention_days`, then their ids,
    then Claude Code usage that waited `usage_wait_hours` for its activation in vain."""
    if retention_days < 1:
        raise ValueError("retention_days must be at least 1")
    cutoff = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=retention_days)
    result = RetentionResult(cutoff=cutoff, bound=month_start(cutoff))
    with engine.connect() as conn:
        names = list(conn.execute(_PARTITIONS).scalars())
    for name in names:
        match = _PARTITION.match(name)
        if match and _month_end(int(match.group(1)), int(match.group(2))) <= result.bound:
            result.dropped_partitions.append(name)
    if dry_run:
        return result
    for name in result.dropped_partitions:
        with engine.begin() as conn:
            # Dropping a partition locks the parent: wait briefly rather than stall writers.
            conn.execute(text("SET LOCAL lock_timeout = '30s'"))
            conn.execute(text(f'DROP TABLE IF EXISTS "{name}"'))
    with engine.begin() as conn:
        result.deleted_default_rows = conn.execute(
            _DELETE_DEFAULT, {"bound": result.bound}
        ).rowcount
    while True:
        with engine.begin() as conn:
            deleted = conn.execute(_DELETE_IDS, {"bound": result.bound, "batch": batch}).rowcount
        result.deleted_ids += deleted
        if deleted < batch:
            break
    result.claude_code = otlp_usage.sweep(
        engine, wait_hours=usage_wait_hours, bound=result.bound, now=now
    )
    return result
