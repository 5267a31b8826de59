"""`connection test` of a target: the report a kind's `check` returns (read-only checks of
one connection), and the lines every kind's report shares."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from claresia_sync.api.connect import ConnectionKeyError, TenantConnection
from claresia_sync.api.errors import ZERO_RETENTION_HINT
from claresia_sync.api.retry import Backoff
from claresia_sync.api.sdk import SdkCaller

TEST_ATTEMPTS = 2  # interactive: answer within seconds


class _OnSdk(Protocol):
    caller: SdkCaller


T = TypeVar("T", bound=_OnSdk)


@dataclass
class TargetReport:
    target: str
    """`TenantConnection.target_key`."""
    where: str
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "where": self.where,
            "lines": self.lines,
            "warnings": self.warnings,
            "problems": self.problems,
            "ok": not self.problems,
        }


def zero_retention(conn: TenantConnection, report: TargetReport) -> None:
    """Where the zero-retention answer comes from: the tenants file's attestation (no API
    reports it); a problem without one."""
    if conn.zero_retention is None:
        report.lines.append("Zero retention: NOT attested (no API reports it)")
        report.problems.append(
            f"{conn.describe()}: zero-retention not attested — {ZERO_RETENTION_HINT}, then record "
            "it in the tenants file as `zero_retention: {attested_by, attested_at}`"
        )
    else:
        report.lines.append(f"Zero retention: {conn.zero_retention}; no API reports it")


def open_for_check(
    open_target: Callable[[TenantConnection], T],
    conn: TenantConnection,
    report: TargetReport,
    key_words: str,
    of: str | None = None,
) -> T | None:
    """The target a check reads through, with the interactive retry budget and its `API:` line
    (`key_words` say which key, e.g. "API key", `of` whose; the hint names it, never the key);
    None when the key reference cannot be read (the reason is the report's problem)."""
    try:
        target = open_target(conn)
    except ConnectionKeyError as exc:
        report.problems.append(str(exc))
        return None
    target.caller.retry = Backoff(TEST_ATTEMPTS)
    whose = f" of {of}" if of else ""
    report.lines.append(
        f"API:            {conn.base_url} ({key_words} {target.caller.key_hint}{whose})"
    )
    return target
