"""`connection test --tenant T` for the targets of `targets:` (claude-enterprise, claude-api,
any kind registered in `publish.targets.KINDS`): each connection is checked, read-only, by its
kind's `check` (the organisation, the key's scopes or workspace, where the zero-retention answer
comes from); org-skills' connection is `connection_check`'s.
"""

from __future__ import annotations

from collections.abc import Mapping

from claresia_sync.api.connect import TenantConnection
from claresia_sync.publish.targets import KINDS
from claresia_sync.publish.targets.check import TargetReport

__all__ = ["TargetReport", "check_targets"]


async def check_targets(
    conns: list[TenantConnection], groups: Mapping[str, str]
) -> list[TargetReport]:
    """The reports of the targets among `conns` whose kind checks them (`groups`: archetype ->
    its rbac group); a connection of a kind not known here is reported as a problem."""
    out = []
    for conn in conns:
        kind = KINDS.get(conn.target)
        if kind is None:
            report = TargetReport(conn.target_key, conn.describe())
            report.problems.append(
                f"{conn.describe()}: unknown target kind {conn.target!r} (known: "
                f"{', '.join(KINDS)})"
            )
            out.append(report)
            continue
        report_or_none = await kind.check(conn, groups)
        if report_or_none is not None:
            out.append(report_or_none)
    return out
