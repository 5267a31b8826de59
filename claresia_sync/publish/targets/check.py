"""`connection test` of a target: the report a kind's `check` returns (read-only checks of
one connection), and the lines every kind's report shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from claresia_sync.api.connect import TenantConnection
from claresia_sync.api.errors import ZERO_RETENTION_HINT

TEST_ATTEMPTS = 2  # interactive: answer within seconds


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
