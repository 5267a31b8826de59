"""Tables for the operator: the plan (`--dry-run`) and the summary of a finished job."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table

from claresia_sync.publish.applier import OUTCOMES
from claresia_sync.publish.planner import Op, Plan, PlanItem


def _details(item: PlanItem) -> str:
    if item.op == Op.UPDATE:
        return "new version + ACL" if item.changes.set_access else "new version"
    return ""


def plan_table(plan: Plan, *, show_unchanged: bool = False) -> Table:
    """One row per item that would change something (all rows with `show_unchanged`)."""
    table = Table("org", "tenant", "skill", "published name", "action", "why")
    for org in plan.orgs:
        if org.refused:
            table.add_row(org.org.org_id, org.org.root_slug, "", "", "REFUSED", org.refused)
            continue
        for item in sorted(org.items, key=lambda i: (i.tenant_slug, i.name)):
            if item.op == Op.UNCHANGED and not show_unchanged and not item.reason:
                continue
            extra = _details(item)
            why = "; ".join(x for x in (item.reason, extra) if x)
            table.add_row(
                item.org_id, item.tenant_slug, item.skill_id or "", item.name, item.op.value, why
            )
    return table


def plan_json(plan: Plan) -> dict[str, Any]:
    """The plan as `republish --dry-run --json` prints it: every item, the refusals, counts."""
    items = [
        {
            "org_id": item.org_id,
            "tenant": item.tenant_slug,
            "skill_id": item.skill_id,
            "name": item.name,
            "action": item.op.value,
            "why": "; ".join(x for x in (item.reason, _details(item)) if x),
        }
        for org in plan.orgs
        for item in sorted(org.items, key=lambda i: (i.tenant_slug, i.name))
    ]
    refused = [
        {"org_id": org.org.org_id, "tenant": org.org.root_slug, "why": org.refused}
        for org in plan.orgs
        if org.refused
    ]
    return {"counts": plan_counts(plan), "refused": refused, "items": items}


def counts_line(counts: dict[str, Any], keys: Sequence[str] = OUTCOMES) -> str:
    return ", ".join(f"{counts.get(k, 0)} {k}" for k in keys)


PLAN_KEYS = tuple(op.value for op in Op)


def plan_counts(plan: Plan) -> dict[str, int]:
    counts = plan.counts()
    for org in plan.orgs:
        if org.refused:
            counts[Op.FAILED.value] += len(org.org.skills) or 1
    return counts


def summary_table(
    job_id: int, status: str, stats: dict[str, Any], errors: list[dict[str, Any]]
) -> Table:
    table = Table(title=f"publish job {job_id}: {status}")
    for name in (*OUTCOMES, "api calls", "api writes", "publish lag"):
        table.add_column(name, justify="right")
    lag = stats.get("publish_lag_s")
    table.add_row(
        *(str(stats.get(k, 0)) for k in OUTCOMES),
        str(stats.get("api_calls", 0)),
        str(stats.get("api_writes", 0)),
        "-" if lag is None else f"{lag:.2f}s",
    )
    return table


def errors_table(errors: list[dict[str, Any]], limit: int = 50) -> Table:
    table = Table("org", "tenant", "skill", "error", title="errors")
    for e in errors[:limit]:
        table.add_row(
            e.get("org_id") or "",
            e.get("tenant") or "",
            e.get("skill_id") or "",
            str(e.get("error")),
        )
    if len(errors) > limit:
        table.add_row("", "", "", f"... and {len(errors) - limit} more (publish_job.errors)")
    return table
