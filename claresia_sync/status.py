"""`claresia-sync status`: where every tenant and organisation stands, read from the database."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection, text

from claresia_sync.errors import one_line
from claresia_sync.publish.jobs import ACTIVE
from claresia_sync.publish.targets import KINDS
from claresia_sync.telemetry.sources import (
    AUDIT_POLLER,
    CLAUDE_CODE_OTLP,
    SourceState,
)

# A job with tenant_id NULL (republish --all) covers every tenant; a sub-tenant's organisation is
# its parent's.
_TENANTS_SQL = text("""
SELECT t.slug,
       p.slug AS parent,
       c.org_id,
       count(pub.id) FILTER (WHERE pub.status = 'published') AS live,
       count(pub.id) FILTER (WHERE pub.status = 'failed') AS failed,
       (SELECT pub2.published_name || ': ' || pub2.last_error FROM publication pub2
         WHERE pub2.tenant_id = t.id AND pub2.status = 'failed' AND pub2.last_error IS NOT NULL
         ORDER BY pub2.updated_at DESC, pub2.id LIMIT 1) AS last_error,
       last_job.finished_at, last_job.status AS job_status, last_job.lag_seconds,
       last_job.errors AS job_errors,
       (SELECT count(*) FROM publish_job q
         WHERE q.status = ANY(:active)
           AND (q.tenant_id IS NULL OR q.tenant_id IN (t.id, t.parent_id))) AS pending_jobs
  FROM tenant t
  LEFT JOIN tenant p ON p.id = t.parent_id
  LEFT JOIN org_connection c ON c.tenant_id = coalesce(t.parent_id, t.id)
  LEFT JOIN publication pub ON pub.tenant_id = t.id
  LEFT JOIN LATERAL (
        SELECT j.finished_at, j.status, j.lag_seconds, j.errors FROM publish_job j
         WHERE j.finished_at IS NOT NULL
           AND (j.tenant_id IS NULL OR j.tenant_id IN (t.id, t.parent_id))
         ORDER BY j.finished_at DESC LIMIT 1) last_job ON true
 GROUP BY t.id, t.slug, p.slug, c.org_id, last_job.finished_at, last_job.status,
          last_job.lag_seconds, last_job.errors
 ORDER BY coalesce(p.slug, t.slug), p.slug NULLS FIRST, t.slug
""")

_ORGS_SQL = text("""
SELECT c.org_id, t.slug AS tenant, cp.after_id, cp.updated_at, cp.last_polled_at,
       cp.last_poll_status, cp.last_poll_error, cp.last_poll_events,
       (SELECT count(*) FROM telemetry_quarantine q WHERE q.org_id = c.org_id) AS quarantined
  FROM org_connection c
  JOIN tenant t ON t.id = c.tenant_id
  LEFT JOIN audit_checkpoint cp ON cp.org_id = c.org_id
 ORDER BY c.org_id
""")


@dataclass(frozen=True)
class TenantStatus:
    slug: str
    parent: str | None
    live: int
    failed: int
    last_error: str | None
    """Why the tenant's last job failed it (an organisation refused, say for zero retention;
    a skill that failed), else its most recent failed skill's error; whole, on one line."""
    last_publish_at: dt.datetime | None
    last_job_status: str | None
    last_lag_seconds: float | None
    pending_jobs: int

    @property
    def failing(self) -> bool:
        return self.failed > 0 or self.last_error is not None


@dataclass(frozen=True)
class OrgStatus:
    org_id: str
    tenant: str
    after_id: str | None
    checkpoint_at: dt.datetime | None
    last_polled_at: dt.datetime | None
    last_poll_status: str | None
    last_poll_error: str | None
    last_poll_events: int | None
    quarantined: int

    @property
    def failing(self) -> bool:
        return self.last_poll_status == "error"

    def checkpoint_age(self, now: dt.datetime) -> float | None:
        seen = self.last_polled_at or self.checkpoint_at
        return (now - seen).total_seconds() if seen else None


def _job_error(errors: list[dict[str, Any]] | None, slug: str, org_id: str | None) -> str | None:
    """The first error of a job that concerns tenant `slug`: one of its skills, its
    organisation refused as a whole, or the job itself (a crash names no organisation)."""
    for entry in errors or []:
        tenant, org = entry.get("tenant"), entry.get("org_id")
        if tenant == slug or (tenant is None and org in (None, org_id)):
            name = entry.get("name")
            return one_line(f"{name}: {entry.get('error')}" if name else str(entry.get("error")))
    return None


def tenant_status(conn: Connection) -> list[TenantStatus]:
    out = []
    for r in conn.execute(_TENANTS_SQL, {"active": [str(s) for s in ACTIVE]}):
        error = _job_error(r.job_errors, r.slug, r.org_id) or r.last_error
        out.append(
            TenantStatus(
                r.slug,
                r.parent,
                r.live,
                r.failed,
                one_line(error) if error else None,
                r.finished_at,
                r.job_status,
                r.lag_seconds,
                r.pending_jobs,
            )
        )
    return out


def org_status(conn: Connection) -> list[OrgStatus]:
    return [OrgStatus(*row) for row in conn.execute(_ORGS_SQL)]


def status_json(
    tenants: list[TenantStatus],
    orgs: list[OrgStatus],
    now: dt.datetime,
    sources: list[SourceState] | None = None,
) -> dict[str, Any]:
    """What `status --json` prints: every field, times in ISO 8601, ages in seconds; the
    telemetry sources of real organisations (issue 16) when given."""

    def plain(value: Any) -> Any:
        return value.isoformat() if isinstance(value, dt.datetime) else value

    return {
        "failing": any(t.failing for t in tenants)
        or any(o.failing for o in orgs)
        or any(x.last_error is not None for x in sources or []),
        "tenants": [
            {**{k: plain(v) for k, v in asdict(t).items()}, "failing": t.failing} for t in tenants
        ],
        "organisations": [
            {
                **{k: plain(v) for k, v in asdict(o).items()},
                "checkpoint_age_s": o.checkpoint_age(now),
                "failing": o.failing,
            }
            for o in orgs
        ],
        "sources": [
            {
                **{k: plain(v) for k, v in asdict(x).items()},
                "last_success_age_s": (now - x.last_success_at).total_seconds()
                if x.last_success_at
                else None,
                "failing": x.last_error is not None,
            }
            for x in sources or []
        ],
    }


# --- every target's organisations and the freshness of each telemetry source -----------------

# What each target kind's organisations report, read by claresia-sync (docs/analytics.md), is
# the kind's `telemetry_sources`: the audit log of org-skills organisations; the skills
# analytics and activity feed of Claude Enterprise ones. Claude Code's OTLP export is per root
# tenant (its token), shown with the organisation of the tenant's target that takes Claude
# Code's managed settings (claude-enterprise), else its first.


def expected_sources(kind: str) -> tuple[str, ...]:
    """The sources that should run for an organisation used through `kind` (none for a kind
    not known here)."""
    found = KINDS.get(kind)
    return found.telemetry_sources if found is not None else ()


def _takes_claude_code(kind: str) -> bool:
    found = KINDS.get(kind)
    return found is not None and found.claude_code_settings


@dataclass(frozen=True)
class SourceFreshness:
    source: str
    key: str
    """The organisation (or, for Claude Code's export, the root tenant) it is kept for."""
    last_run_at: dt.datetime | None
    last_success_at: dt.datetime | None
    last_error: str | None
    lag_seconds: float | None
    """now - the newest instant its stored data covers (the audit poller: since its last poll)."""

    @property
    def failing(self) -> bool:
        return self.last_error is not None


@dataclass(frozen=True)
class OrgTargets:
    """One organisation of a root tenant, every target it is used through, its sources."""

    org_id: str
    tenant: str
    targets: tuple[str, ...]
    """`publication.target` values: org-skills, claude-enterprise, claude-api:<workspace>."""
    sources: tuple[SourceFreshness, ...]

    @property
    def failing(self) -> bool:
        return any(s.failing for s in self.sources)


def _audit_freshness(o: OrgStatus, now: dt.datetime) -> SourceFreshness:
    ok = o.last_poll_status != "error"
    return SourceFreshness(
        AUDIT_POLLER,
        o.org_id,
        o.last_polled_at,
        o.last_polled_at if ok else None,
        o.last_poll_error if not ok else None,
        o.checkpoint_age(now),
    )


def _freshness(x: SourceState) -> SourceFreshness:
    return SourceFreshness(
        x.source, x.org_id, x.last_run_at, x.last_success_at, x.last_error, x.lag_seconds
    )


def organisations(
    targets: list[tuple[str, str, str]],
    orgs: list[OrgStatus],
    sources: list[SourceState],
    now: dt.datetime,
) -> list[OrgTargets]:
    """Every organisation of `targets` ((root tenant, org id, target) of every target
    connection), with the freshness and last error of each source that reads it; a source
    that should run and never did is shown without a run."""
    by_org: dict[tuple[str, str], list[str]] = {}
    for tenant, org_id, target in targets:
        by_org.setdefault((org_id, tenant), []).append(target)
    audit = {o.org_id: _audit_freshness(o, now) for o in orgs}
    kept = {(x.source, x.org_id): _freshness(x) for x in sources}
    otlp_home: dict[str, tuple[str, bool]] = {}  # root tenant -> (org, takes Claude Code's)
    for (org_id, tenant), kinds in sorted(by_org.items()):
        settings = any(_takes_claude_code(k.partition(":")[0]) for k in kinds)
        if tenant not in otlp_home or (settings and not otlp_home[tenant][1]):
            otlp_home[tenant] = (org_id, settings)
    out = []
    for (org_id, tenant), kinds in sorted(by_org.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        found: list[SourceFreshness] = []
        for kind in dict.fromkeys(k.partition(":")[0] for k in kinds):
            for name in expected_sources(kind):
                never = SourceFreshness(name, org_id, None, None, None, None)
                found.append(audit.get(org_id, never) if name == AUDIT_POLLER else
                             kept.get((name, org_id), never))  # fmt: skip
        if otlp_home[tenant][0] == org_id and (CLAUDE_CODE_OTLP, tenant) in kept:
            found.append(kept[(CLAUDE_CODE_OTLP, tenant)])
        out.append(OrgTargets(org_id, tenant, tuple(kinds), tuple(found)))
    return out


def organisations_json(orgs: list[OrgTargets], now: dt.datetime) -> list[dict[str, Any]]:
    def plain(value: Any) -> Any:
        return value.isoformat() if isinstance(value, dt.datetime) else value

    return [
        {
            "org_id": o.org_id,
            "tenant": o.tenant,
            "targets": list(o.targets),
            "failing": o.failing,
            "sources": [
                {
                    **{k: plain(v) for k, v in asdict(s).items()},
                    "last_success_age_s": (now - s.last_success_at).total_seconds()
                    if s.last_success_at
                    else None,
                    "failing": s.failing,
                }
                for s in o.sources
            ],
        }
        for o in orgs
    ]
