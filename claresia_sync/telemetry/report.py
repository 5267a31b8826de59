"""`telemetry report`: per tenant and skill, invocations, failures, failure rate, cost and p50/p95
duration over a period, read from the analyst view `telemetry_invocation` (migration 0002); with
`--by-source`, what each source says, read from `skill_usage_by_source` (migration 0015)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal

from sqlalchemy import Connection, text

from claresia_sync.errors import UserError
from claresia_sync.telemetry.sources import (
    ACTIVITY_FEED,
    AUDIT_POLLER,
    CLAUDE_CODE_OTLP,
    SKILLS_ANALYTICS,
)

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


# Whole UTC days from :since (the view's grain); users are distinct over the whole period, so
# they come from the rows, not from the view's per-day counts (which do not add up).
BY_SOURCE_SQL = """
WITH v AS (
    SELECT tenant_slug, skill_id,
           sum(audit_invocations)::bigint AS audit_runs,
           sum(audit_failures)::bigint AS audit_failures,
           sum(claude_code_activations)::bigint AS claude_code_activations,
           sum(invocations)::bigint AS invocations,
           sum(failures)::bigint AS failures,
           sum(cost_usd) AS cost_usd,
           (sum(input_tokens) + sum(output_tokens))::bigint AS tokens,
           sum(daily_invocations)::bigint AS apps_invocations,
           sum(daily_overage_spend_usd) AS apps_overage_spend_usd,
           sum(daily_list_price_usd) AS apps_list_price_usd,
           sum(activity_events)::bigint AS lifecycle_events
      FROM skill_usage_by_source
     WHERE day >= :since
       AND (CAST(:tenant AS text) IS NULL OR tenant_slug = :tenant OR root_tenant_slug = :tenant)
       AND (CAST(:skill AS text) IS NULL OR skill_id = :skill)
     GROUP BY tenant_slug, skill_id
), u AS (
    SELECT tenant_slug, skill_id, count(DISTINCT actor_user_id) AS users
      FROM telemetry_invocation
     WHERE occurred_at >= :since_at
       AND (CAST(:skill AS text) IS NULL OR skill_id = :skill)
     GROUP BY tenant_slug, skill_id
)
SELECT v.*, coalesce(u.users, 0) AS users
  FROM v
  LEFT JOIN u ON u.tenant_slug = v.tenant_slug AND u.skill_id IS NOT DISTINCT FROM v.skill_id
 ORDER BY v.tenant_slug, v.invocations DESC, v.apps_invocations DESC NULLS LAST, v.skill_id
"""


@dataclass(frozen=True)
class SourceFigures:
    """One tenant and skill over whole UTC days: per-event sources (audit log, Claude Code),
    their totals (what the default report counts), the skills analytics, the activity feed."""

    tenant_slug: str
    skill_id: str | None
    audit_runs: int
    audit_failures: int
    claude_code_activations: int
    invocations: int
    failures: int
    cost_usd: Decimal
    tokens: int
    users: int
    apps_invocations: int | None
    apps_overage_spend_usd: Decimal | None
    apps_list_price_usd: Decimal | None
    lifecycle_events: int


# The four sources by the names `status` and `telemetry_source` use, and what makes a row of
# the report one of theirs.
SOURCES: dict[str, Callable[[SourceFigures], bool]] = {
    AUDIT_POLLER: lambda f: f.audit_runs > 0,
    CLAUDE_CODE_OTLP: lambda f: f.claude_code_activations > 0,
    SKILLS_ANALYTICS: lambda f: f.apps_invocations is not None,
    ACTIVITY_FEED: lambda f: f.lifecycle_events > 0,
}


def source_report(
    conn: Connection,
    *,
    since: dt.date,
    tenant: str | None = None,
    skill: str | None = None,
    source: str | None = None,
) -> list[SourceFigures]:
    """What each source says per tenant and skill, from UTC day `since` on; of one skill, and
    only the rows `source` (a name of `SOURCES`) has something in, when given."""
    if source is not None and source not in SOURCES:
        raise UserError(f"source {source!r}: use one of {', '.join(SOURCES)}")
    since_at = dt.datetime.combine(since, dt.time(), dt.UTC)
    params = {"since": since, "since_at": since_at, "tenant": tenant, "skill": skill}
    rows = conn.execute(text(BY_SOURCE_SQL), params)
    figures = [SourceFigures(**row._mapping) for row in rows]
    return figures if source is None else [f for f in figures if SOURCES[source](f)]


# Per UTC day, what each source says of the tenants and skills asked for (the charts of the
# console's Telemetry and skill pages).
SOURCE_DAILY_SQL = """
SELECT day,
       sum(audit_invocations)::bigint AS audit_runs,
       sum(audit_failures)::bigint AS audit_failures,
       sum(claude_code_activations)::bigint AS claude_code_activations,
       sum(invocations)::bigint AS invocations,
       sum(failures)::bigint AS failures,
       round(sum(failures)::numeric / nullif(sum(invocations), 0), 4) AS failure_rate,
       sum(cost_usd) AS cost_usd,
       sum(daily_invocations)::bigint AS apps_invocations,
       sum(activity_events)::bigint AS lifecycle_events
  FROM skill_usage_by_source
 WHERE day >= :since
   AND (CAST(:tenant AS text) IS NULL OR tenant_slug = :tenant OR root_tenant_slug = :tenant)
   AND (CAST(:skill AS text) IS NULL OR skill_id = :skill)
 GROUP BY day ORDER BY day
"""


def source_daily(
    conn: Connection, *, since: dt.date, tenant: str | None = None, skill: str | None = None
) -> list[dict[str, object]]:
    """Per UTC day from `since`: audit runs and failures, Claude Code activations, their
    totals, failure rate and cost, Claude apps uses (skills analytics), lifecycle events."""
    params = {"since": since, "tenant": tenant, "skill": skill}
    return [dict(row._mapping) for row in conn.execute(text(SOURCE_DAILY_SQL), params)]


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
    return _layout(header, cells, fmt)


def _money(value: Decimal | None, fmt: str) -> str:
    if value is None:
        return ""
    return f"{value:.2f}" if fmt == "table" else str(value)


def render_by_source(figures: Sequence[SourceFigures], fmt: str) -> str:
    """The per-source report as a table (text), CSV or JSON."""
    if fmt == "json":
        return json.dumps([asdict(f) for f in figures], default=str, indent=2)
    header = [
        "tenant",
        "skill",
        "audit_runs",
        "audit_failures",
        "claude_code",
        "invocations",
        "cost_usd",
        "tokens",
        "users",
        "apps_uses",
        "apps_overage_usd",
        "apps_list_usd",
        "lifecycle",
    ]
    cells = [
        [
            f.tenant_slug,
            f.skill_id or "",
            str(f.audit_runs),
            str(f.audit_failures),
            str(f.claude_code_activations),
            str(f.invocations),
            _money(f.cost_usd, fmt),
            str(f.tokens),
            str(f.users),
            "" if f.apps_invocations is None else str(f.apps_invocations),
            _money(f.apps_overage_spend_usd, fmt),
            _money(f.apps_list_price_usd, fmt),
            str(f.lifecycle_events),
        ]
        for f in figures
    ]
    return _layout(header, cells, fmt)


def _layout(header: list[str], cells: list[list[str]], fmt: str) -> str:
    """Text cells as CSV or an aligned table (the first two columns are names)."""
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
