"""Telemetry settings from the environment (defaults suit the demo and an audit trail).

- `CLARESIA_TELEMETRY_RETENTION_DAYS`: keep rows this many days (default 365).
- `CLARESIA_TELEMETRY_STORE_EMAILS`: `true` to keep the actor's email (default: dropped).
- `CLARESIA_HUB_RECORD_URL`: the "View record" link; placeholders `{parent_tenant}` (the root
  tenant), `{tenant}` (the tenant or sub-tenant) and `{record_id}`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from claresia_sync.errors import UserError

RETENTION_ENV = "CLARESIA_TELEMETRY_RETENTION_DAYS"
EMAILS_ENV = "CLARESIA_TELEMETRY_STORE_EMAILS"
HUB_URL_ENV = "CLARESIA_HUB_RECORD_URL"
DEFAULT_RETENTION_DAYS = 365
DEFAULT_HUB_RECORD_URL = "https://hub.{parent_tenant}.claresia.com/records/{record_id}"
_PLACEHOLDERS = {"parent_tenant": "p", "tenant": "t", "record_id": "r"}


@dataclass(frozen=True)
class TelemetrySettings:
    retention_days: int = DEFAULT_RETENTION_DAYS
    store_emails: bool = False
    hub_record_url: str = DEFAULT_HUB_RECORD_URL

    def __post_init__(self) -> None:
        if self.retention_days < 1:
            raise UserError(
                f"{RETENTION_ENV}={self.retention_days}: retention must be at least 1 day"
            )
        try:
            self.hub_record_url.format(**_PLACEHOLDERS)
        except (KeyError, IndexError, ValueError) as exc:
            raise UserError(
                f"{HUB_URL_ENV}={self.hub_record_url!r} is not a valid link template ({exc}): "
                "use the placeholders {parent_tenant}, {tenant} and {record_id}"
            ) from None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TelemetrySettings:
        env = os.environ if env is None else env
        days = env.get(RETENTION_ENV, "").strip()
        try:
            retention = int(days) if days else DEFAULT_RETENTION_DAYS
        except ValueError:
            raise UserError(f"{RETENTION_ENV}={days!r} is not a whole number of days") from None
        emails = env.get(EMAILS_ENV, "").strip().lower()
        if emails not in ("", "0", "1", "true", "false", "yes", "no"):
            raise UserError(f"{EMAILS_ENV}={emails!r}: use true or false")
        return cls(
            retention_days=retention,
            store_emails=emails in ("1", "true", "yes"),
            hub_record_url=env.get(HUB_URL_ENV, "").strip() or DEFAULT_HUB_RECORD_URL,
        )
