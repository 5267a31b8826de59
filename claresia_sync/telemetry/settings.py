"""Telemetry settings (defaults suit the demo and an audit trail).

They are read with every other setting by `claresia_sync.config.Settings` at an entry point
(its `telemetry` property builds this object) and handed down; the variables:

- `CLARESIA_TELEMETRY_RETENTION_DAYS`: keep rows this many days (default 365).
- `CLARESIA_TELEMETRY_STORE_EMAILS`: `true` to keep the actor's email (default: dropped).
- `CLARESIA_OTLP_USAGE_WAIT_HOURS`: how long a Claude Code prompt's usage waits for its skill
  activation before the daily retention deletes it (default 24; telemetry/otlp_usage.py).
- `CLARESIA_HUB_RECORD_URL`: the "View record" link; placeholders `{parent_tenant}` (the root
  tenant), `{tenant}` (the tenant or sub-tenant) and `{record_id}`.
"""

from __future__ import annotations

from dataclasses import dataclass

from claresia_sync.errors import UserError

RETENTION_ENV = "CLARESIA_TELEMETRY_RETENTION_DAYS"
HUB_URL_ENV = "CLARESIA_HUB_RECORD_URL"
DEFAULT_RETENTION_DAYS = 365
DEFAULT_USAGE_WAIT_HOURS = 24
DEFAULT_HUB_RECORD_URL = "https://hub.{parent_tenant}.claresia.com/records/{record_id}"
_PLACEHOLDERS = {"parent_tenant": "p", "tenant": "t", "record_id": "r"}


def link_template_problem(url: str) -> str | None:
    """Why `url` is not a usable "View record" link template, or None."""
    try:
        url.format(**_PLACEHOLDERS)
    except (KeyError, IndexError, ValueError) as exc:
        return (
            f"not a valid link template ({exc}): use the placeholders "
            "{parent_tenant}, {tenant} and {record_id}"
        )
    return None


@dataclass(frozen=True)
class TelemetrySettings:
    retention_days: int = DEFAULT_RETENTION_DAYS
    store_emails: bool = False
    hub_record_url: str = DEFAULT_HUB_RECORD_URL
    otlp_usage_wait_hours: int = DEFAULT_USAGE_WAIT_HOURS

    def __post_init__(self) -> None:
        if self.retention_days < 1:
            raise UserError(
                f"{RETENTION_ENV}={self.retention_days}: retention must be at least 1 day"
            )
        problem = link_template_problem(self.hub_record_url)
        if problem:
            raise UserError(f"{HUB_URL_ENV}={self.hub_record_url!r} is {problem}")
