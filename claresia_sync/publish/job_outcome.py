"""What a publish job's rounds add up to: each item's latest meaningful result, the job's
status, its stats and its errors (`job_run` records them; `unit_sweep` too, for the units it
finds with nothing to do, so both write the same numbers)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from claresia_sync.db.models import JobStatus
from claresia_sync.publish import jobs
from claresia_sync.publish.applier import ItemResult
from claresia_sync.publish.reconcile import RunResult

WRITE_METHODS = ("POST", "PUT", "DELETE", "PATCH")


Key = tuple[str, str, str, str, str]


def key_of(result: ItemResult) -> Key:
    # The target too: one published name is a plugin and a skill per workspace (issue 15); and
    # a twin's delete is its own item beside the one of the copy that stays (issue 21).
    item = result.item
    twin = item.remote_id or "" if item.twin_of is not None else ""
    return (item.org_id, item.target, item.tenant_slug, item.name, twin)


@dataclass
class Rounds:
    """The merged view of a job's rounds: each skill's latest meaningful result."""

    runs: list[RunResult] = field(default_factory=list)
    latest: dict[Key, ItemResult] = field(default_factory=dict)
    attempts: dict[Key, int] = field(default_factory=dict)

    def add(self, run: RunResult) -> None:
        self.runs.append(run)
        for result in run.results:
            key = key_of(result)
            before = self.latest.get(key)
            # A later round that finds a skill unchanged keeps what the earlier round did to it.
            if before is None or before.outcome == "failed" or result.outcome != "unchanged":
                self.latest[key] = result
            if result.item.op.value != "unchanged":
                self.attempts[key] = self.attempts.get(key, 0) + 1

    def retryable(self) -> list[ItemResult]:
        return [r for r in self.latest.values() if r.outcome == "failed" and r.retryable]

    def merged(self) -> RunResult:
        last = self.runs[-1]
        return RunResult(last.plan, list(self.latest.values()), dict(last.refused), last.calls)

    def errors(self) -> list[dict[str, Any]]:
        merged = self.merged()
        out: list[dict[str, Any]] = []
        for org_id, why in sorted(merged.refused.items()):
            out.append(
                {
                    "org_id": org_id,
                    "tenant": None,
                    "skill_id": None,
                    "name": None,
                    "error": why,
                    "retryable": False,
                    "attempts": len(self.runs),
                }
            )
        for r in sorted(merged.results, key=key_of):
            if r.error:
                out.append(
                    {
                        "org_id": r.item.org_id,
                        "tenant": r.item.tenant_slug,
                        "skill_id": r.item.skill_id,
                        "name": r.item.name,
                        "error": r.error,
                        "retryable": r.retryable,
                        "attempts": self.attempts.get(key_of(r), 1),
                    }
                )
        return out

    def stats(self, job: jobs.ClaimedJob) -> dict[str, Any]:
        merged = self.merged()
        stats: dict[str, Any] = dict(merged.counts())
        stats["api_calls"] = sum(run.calls.total() for run in self.runs)
        stats["api_writes"] = sum(
            run.calls.total(method=m) for run in self.runs for m in WRITE_METHODS
        )
        stats["check_remote"] = merged.plan.check_remote
        stats["rounds"] = len(self.runs)
        stats["retried"] = sum(1 for n in self.attempts.values() if n > 1)
        stats["still_failing"] = sum(1 for e in self.errors() if e["skill_id"] or e["name"])
        last = merged.last_live_at
        stats["publish_lag_s"] = (
            round((last - job.requested_at).total_seconds(), 3) if last is not None else None
        )
        return stats


def status_of(run: RunResult, cancelled: bool) -> JobStatus:
    if cancelled:
        return JobStatus.CANCELLED
    counts = run.counts()
    if not counts["failed"]:
        return JobStatus.SUCCEEDED
    ok = sum(n for k, n in counts.items() if k != "failed")
    return JobStatus.PARTIAL if ok else JobStatus.FAILED
