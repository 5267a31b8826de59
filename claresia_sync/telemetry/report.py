"""`telemetry report`: per tenant and skill, invocations, failures, failure rate, cost and p50/p95
duration over a period, read from the analyst view `telemetry_invocation` (migration 0002)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal

from sqlalchemy import Connection, text

from claresia_sync.errors import UserError

FORMATS = ("table", "csv", "json")
_SPAN = re.compile(r"^(\d+)([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

# Sub-tenants are reported on their own rows; --tenant names a tenant or its parent.
REPORT_SQL = """
SELECT tenant_slug, skill_id,
       count(*) AS invocations,
       count(*) FILTER (WHERE status = 'failed') AS failures,
       round(count(*) FILTER (WHERE status = 'failed')::numeric / count(*), 4) AS failure_rate,
       coalesce(sum(cost_usd), 0) AS cost_usd,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) AS p50_duration_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS p95_duration_ms
FROM telemetry_invocation
WHERE occurred_at >= :since
  AND (CAST(:tenant AS text) IS NULL OR tenant_slug = :tenant OR root_tenant_slug = :tenant)
GROUP BY tenant_slug, skill_id
ORDER BY tenant_slug, invocations DESC, skill_id
"""


@dataclass(frozen=True)
class SkillFigures:
    tenant_slug: str
    skill_id: str | None
    invocations: int
    failures: int
    failure_rate: Decimal
    cost_usd: Decimal
    p50_duration_ms: float | None
    p95_duration_ms: float | None


def parse_since(value: str, now: dt.datetime | None = None) -> dt.datetime:
    """`7d`, `24h`, `30m`, `2w`, or an ISO date/time (UTC if no zone) -> the start instant."""
    now = now or dt.datetime.now(dt.UTC)
    match = _SPAN.match(value.strip())
    if match:
        return now - dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        start = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise UserError(
            f"--since {value!r}: give a span like 7d, 24h, 30m, 2w or a date like 2026-11-01"
        ) from None
    return start if start.tzinfo else start.replace(tzinfo=dt.UTC)


def skill_report(
    conn: Connection, *, since: dt.datetime, tenant: str | None = None
) -> list[SkillFigures]:
    rows = conn.execute(text(REPORT_SQL), {"since": since, "tenant": tenant})
    return [SkillFigures(**row._mapping) for row in rows]


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.0f}"


def render(figures: Sequence[SkillFigures], fmt: str) -> str:
    """The report as a table (text), CSV or JSON."""
    if fmt == "json":
        return json.dumps([asdict(f) for f in figures], default=str, indent=2)
    header = [
        "tenant",
        "skill",
        "invocations",
        "failures",
        "failure_rate",
        "cost_usd",
        "p50_ms",
        "p95_ms",
    ]
    cells = [
        [
            f.tenant_slug,
            f.skill_id or "",
            str(f.invocations),
            str(f.failures),
            f"{f.failure_rate:.2%}" if fmt == "table" else str(f.failure_rate),
            f"{f.cost_usd:.2f}" if fmt == "table" else str(f.cost_usd),
            _ms(f.p50_duration_ms),
            _ms(f.p95_duration_ms),
        ]
        for f in figures
    ]
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(cells)
        return out.getvalue().rstrip("\n")
    if fmt != "table":
        raise UserError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    widths = [max(len(r[i]) for r in [header, *cells]) for i in range(len(header))]
    numeric = range(2, len(header))
    lines = [
        "  ".join(
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()
        for r in [header, *cells]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
