"""`claresia-sync status`: where every tenant and organisation stands, read from the database."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Connection, text

# A job with tenant_id NULL (republish --all) covers every tenant.
_TENANTS_SQL = text("""
SELECT t.slug,
       p.slug AS parent,
       count(pub.id) FILTER (WHERE pub.status = 'published') AS live,
       count(pub.id) FILTER (WHERE pub.status = 'failed') AS failed,
       (SELECT max(pub2.last_error) FROM publication pub2
         WHERE pub2.tenant_id = t.id AND pub2.status = 'failed') AS last_error,
       last_job.finished_at, last_job.status AS job_status, last_job.lag_seconds,
       (SELECT count(*) FROM publish_job q
         WHERE q.status IN ('queued', 'running')
           AND (q.tenant_id IS NULL OR q.tenant_id IN (t.id, t.parent_id))) AS pending_jobs
  FROM tenant t
  LEFT JOIN tenant p ON p.id = t.parent_id
  LEFT JOIN publication pub ON pub.tenant_id = t.id
  LEFT JOIN LATERAL (
        SELECT j.finished_at, j.status, j.lag_seconds FROM publish_job j
         WHERE j.finished_at IS NOT NULL
           AND (j.tenant_id IS NULL OR j.tenant_id IN (t.id, t.parent_id))
         ORDER BY j.finished_at DESC LIMIT 1) last_job ON true
 GROUP BY t.id, t.slug, p.slug, last_job.finished_at, last_job.status, last_job.lag_seconds
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
    last_publish_at: dt.datetime | None
    last_job_status: str | None
    last_lag_seconds: float | None
    pending_jobs: int


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

    def checkpoint_age(self, now: dt.datetime) -> float | None:
        seen = self.last_polled_at or self.checkpoint_at
        return (now - seen).total_seconds() if seen else None


def tenant_status(conn: Connection) -> list[TenantStatus]:
    return [TenantStatus(*row) for row in conn.execute(_TENANTS_SQL)]


def org_status(conn: Connection) -> list[OrgStatus]:
    return [OrgStatus(*row) for row in conn.execute(_ORGS_SQL)]
