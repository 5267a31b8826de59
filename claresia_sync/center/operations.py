"""What the Command Center can read and do, as JSON-ready values: each function calls what the
command line calls (status, the planner's dry run, the job queue, the quarantine replay, the
telemetry report), so the API, the console and the CLI cannot disagree.

Errors: `NotFound` (an unknown tenant or job: 404), `Conflict` (a job not in a state for the
verb: 409); anything else is a bug (500, logged).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, or_, select, text, update
from sqlalchemy.orm import Session

from claresia_sync.center.access_words import Names, describe, preference
from claresia_sync.config import Settings
from claresia_sync.db.models import (
    Archetype,
    CatalogSkill,
    JobStatus,
    Publication,
    PublishJob,
    Tenant,
    WorkspaceMapping,
)
from claresia_sync.errors import UserError
from claresia_sync.publish import jobs, kill_switch
from claresia_sync.publish.planner import Op, Plan, PlanItem
from claresia_sync.publish.reconcile import reconcile
from claresia_sync.publish.report import plan_counts
from claresia_sync.status import (
    org_status,
    organisations_json,
    status_json,
    tenant_status,
)
from claresia_sync.status import organisations as org_targets
from claresia_sync.telemetry.quarantine import replay_for_tenant
from claresia_sync.telemetry.report import skill_report, source_daily, source_report
from claresia_sync.telemetry.sources import source_states
from claresia_sync.tenancy.lookup import UnknownTenantError, require_tenant, target_connections

PLAN_CONCURRENCY = 8  # a dry run only reads; keep the console's plans gentle on the API


class NotFound(UserError):
    """An unknown tenant, job or organisation."""


class Conflict(UserError):
    """A verb that does not apply to the job in its state (cancel a finished job, ...)."""


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).isoformat()


def plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.datetime):
        return _iso(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def check_tenant(engine: Engine, slug: str) -> None:
    with Session(engine) as session:
        try:
            require_tenant(session, slug)
        except UnknownTenantError as exc:
            raise NotFound(str(exc)) from None


# --- tenants ------------------------------------------------------------------------------------


def tenants(engine: Engine) -> dict[str, Any]:
    """`status --json`: every tenant (live, failed, last error, last job) and organisation."""
    with engine.connect() as conn:
        report = status_json(tenant_status(conn), org_status(conn), dt.datetime.now(dt.UTC))
    return dict(report)


def tenant(engine: Engine, slug: str) -> dict[str, Any]:
    check_tenant(engine, slug)
    found = next(t for t in tenants(engine)["tenants"] if t["slug"] == slug)
    return dict(found)


def access_names(session: Session) -> Names:
    """Every rbac group by the archetypes using it (`tenant/archetype`), every mapped
    workspace by its name: how the console says who has access."""
    groups: dict[str, list[str]] = {}
    for group, tenant_slug, archetype in session.execute(
        select(Archetype.rbac_group_id, Tenant.slug, Archetype.slug)
        .join(Tenant, Tenant.id == Archetype.tenant_id)
        .order_by(Tenant.slug, Archetype.slug)
    ):
        groups.setdefault(group, []).append(f"{tenant_slug}/{archetype}")
    workspaces = dict(
        session.execute(
            select(WorkspaceMapping.workspace_id, WorkspaceMapping.workspace_name)
        ).all()
    )
    return Names(groups, workspaces)


def publications(
    engine: Engine,
    *,
    tenant: str | None = None,
    job_id: int | None = None,
    skill: str | None = None,
) -> list[dict[str, Any]]:
    """The `publication` rows of a tenant, of a skill, or those a job wrote last (its per-skill
    results: a job split into units, such as a republish-all, wrote them through its units),
    each with its access in words (`access_words`)."""
    query = (
        select(Publication, Tenant.slug)
        .join(Tenant, Tenant.id == Publication.tenant_id)
        .order_by(Tenant.slug, Publication.published_name, Publication.target)
    )
    if tenant is not None:
        query = query.where(Tenant.slug == tenant)
    if job_id is not None:
        by_job = select(PublishJob.id).where(
            or_(PublishJob.id == job_id, PublishJob.parent_id == job_id)
        )
        query = query.where(Publication.last_job_id.in_(by_job))
    if skill is not None:
        query = query.where(Publication.skill_id == skill)
    with Session(engine) as session:
        rows = session.execute(query).all()
        names = access_names(session) if rows else Names({}, {})
    return [
        {
            "tenant": slug,
            "skill_id": p.skill_id,
            "name": p.published_name,
            "target": p.target,
            "status": p.status,
            "remote_id": p.remote_skill_id,
            "version": p.remote_version,
            "content_hash": p.content_hash,
            "acl": p.acl,
            "access": [g.as_json() for g in describe(p.target, p.acl, names)],
            "last_error": p.last_error,
            "published_at": _iso(p.published_at),
        }
        for p, slug in rows
    ]


def tenant_access(engine: Engine, slug: str) -> dict[str, Any]:
    """Who a tenant's grants reach, in words: each archetype's rbac group, installation
    preference (claude-enterprise) and granted skills; the tenant's workspaces; its targets."""
    with Session(engine) as session:
        try:
            found = require_tenant(session, slug)
        except UnknownTenantError as exc:
            raise NotFound(str(exc)) from None
        names = access_names(session)
        archetypes = [
            {
                "slug": a.slug,
                "rbac_group_id": a.rbac_group_id,
                "group": names.group(a.rbac_group_id),
                "installation": a.installation_preference,
                "installation_words": preference(a.installation_preference),
                "grants": sorted(g.skill_id for g in a.grants),
            }
            for a in sorted(found.archetypes, key=lambda a: a.slug)
        ]
        workspaces = [
            {"id": w.workspace_id, "name": w.workspace_name, "org_id": w.org_id}
            for w in sorted(found.workspaces, key=lambda w: w.workspace_id)
        ]
        root = found.parent or found
        targets = [
            {"target": c.target_key, "org_id": c.org_id}
            for c in target_connections(session, {root.id}).get(root.id, [])
        ]
    return {"archetypes": archetypes, "workspaces": workspaces, "targets": targets}


def organisations(engine: Engine) -> list[dict[str, Any]]:
    """Every organisation of every target (org-skills, claude-enterprise, claude-api
    workspaces) with each telemetry source's freshness and last error (`status`)."""
    with Session(engine) as session:
        targets = [
            (c.root_slug, c.org_id, c.target_key)
            for found in target_connections(session).values()
            for c in found
        ]
        conn = session.connection()
        orgs, sources = org_status(conn), source_states(conn)
    now = dt.datetime.now(dt.UTC)
    return organisations_json(org_targets(targets, orgs, sources, now), now)


# --- the plan (a dry run of the reconciliation) -------------------------------------------------


def _access(item: PlanItem) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    live = item.live.access.to_json() if item.live and item.live.access else None
    desired = item.desired.access.to_json() if item.desired else None
    return live, desired


def plan_item_json(item: PlanItem) -> dict[str, Any]:
    live_access, desired_access = _access(item)
    return {
        "op": item.op.value,
        "org_id": item.org_id,
        "tenant": item.tenant_slug,
        "skill_id": item.skill_id,
        "name": item.name,
        "reason": item.reason,
        "new_version": item.changes.new_version or item.op == Op.CREATE,
        "set_access": item.changes.set_access or item.op in (Op.CREATE, Op.ACL),
        "live_hash": item.live.content_hash if item.live else None,
        "desired_hash": item.desired.content_hash if item.desired else None,
        "live_access": live_access,
        "desired_access": desired_access,
    }


def plan_json(plan: Plan) -> dict[str, Any]:
    return {
        "check_remote": plan.check_remote,
        "counts": plan_counts(plan),
        "writes": plan.writes,
        "organisations": [
            {
                "org_id": o.org.org_id,
                "tenant": o.org.root_slug,
                "refused": o.refused,
                "items": [plan_item_json(i) for i in sorted(o.items, key=_order)],
            }
            for o in plan.orgs
        ],
    }


def _order(item: PlanItem) -> tuple[bool, str, str]:
    return (item.op == Op.UNCHANGED, item.tenant_slug, item.name)


async def plan(
    engine: Engine, tenant_slug: str | None, *, force: bool, api_timeout: float
) -> dict[str, Any]:
    """`republish --dry-run [--force]`: what a publish would change; writes nothing."""
    if tenant_slug is not None:
        check_tenant(engine, tenant_slug)
    run = await reconcile(
        engine,
        tenant_slug,
        check_remote=force,
        dry_run=True,
        concurrency=PLAN_CONCURRENCY,
        api_timeout=api_timeout,
    )
    return plan_json(run.plan)


# --- jobs ---------------------------------------------------------------------------------------


def _job(engine: Engine, job_id: int) -> dict[str, Any]:
    try:
        return jobs.get_job(engine, job_id).as_json()
    except jobs.JobStateError as exc:
        raise NotFound(str(exc)) from None


def job(engine: Engine, job_id: int) -> dict[str, Any]:
    """`jobs show`: the job, its progress (skills recorded so far) and per-skill results."""
    view = _job(engine, job_id)
    results = publications(engine, job_id=job_id)
    view["results"] = results
    live = (view.get("stats") or {}).get("progress") or {}
    view["progress"] = {
        "recorded": len(results),
        "done": live.get("done"),
        "total": live.get("total"),
        "of": "skill(s)",
        "finished": view["status"] in _FINISHED,
    }
    units = jobs.get_job(engine, job_id).unit_counts
    if units is not None:  # a job over every tenant: its units (one per organisation) ended
        ended, total = units["ended"], units["total"]
        view["progress"] |= {"done": ended, "total": total, "of": "organisation(s)"}
        view["unit_counts"] = units
    return view


_FINISHED = {str(s) for s in jobs.FINISHED}


def list_jobs(
    engine: Engine, *, status: JobStatus | None, tenant_slug: str | None, limit: int
) -> list[dict[str, Any]]:
    if tenant_slug is not None:
        check_tenant(engine, tenant_slug)
    return [
        v.as_json()
        for v in jobs.list_jobs(engine, status=status, tenant_slug=tenant_slug, limit=limit)
    ]


def publish(
    engine: Engine, tenant_slug: str | None, *, force: bool, requested_by: str
) -> dict[str, Any]:
    """`publish --tenant T [--force]` (or all tenants): queue a job; the daemon runs it."""
    if tenant_slug is not None:
        check_tenant(engine, tenant_slug)
    with Session(engine) as session:
        job_id = jobs.enqueue(session, tenant_slug, force=force)
        # who asked, as `jobs list` shows it (the database login is the same for every operator)
        session.execute(
            update(PublishJob).where(PublishJob.id == job_id).values(requested_by=requested_by)
        )
        session.commit()
    return _job(engine, job_id)


def disable_skill(
    engine: Engine, skill_id: str, tenant_slug: str | None, *, reason: str, by: str
) -> dict[str, Any]:
    """`skill disable SKILL [--tenant T] --reason R`: queue the kill-switch job (the daemon
    runs it ahead of everything); the job, with `disabled` (False: it already was)."""
    if tenant_slug is not None:
        check_tenant(engine, tenant_slug)
    try:
        with Session(engine) as session, session.begin():
            done = kill_switch.disable(session, skill_id, tenant_slug, reason=reason, by=by)
    except kill_switch.UnknownSkill as exc:
        raise NotFound(str(exc)) from None
    return {**_job(engine, done.job_id), "disabled": done.changed}


def enable_skill(
    engine: Engine, skill_id: str, tenant_slug: str | None, *, by: str
) -> dict[str, Any]:
    """`skill enable SKILL [--tenant T]`: queue the publish that gives it back; the job."""
    if tenant_slug is not None:
        check_tenant(engine, tenant_slug)
    try:
        with Session(engine) as session, session.begin():
            done = kill_switch.enable(session, skill_id, tenant_slug, by=by)
    except kill_switch.UnknownSkill as exc:
        raise NotFound(str(exc)) from None
    except kill_switch.NotDisabled as exc:
        raise Conflict(str(exc)) from None
    return _job(engine, done.job_id)


def catalog_skill_ids(engine: Engine) -> list[str]:
    """Every catalog skill id (the kill switch's choice)."""
    with Session(engine) as session:
        return list(session.scalars(select(CatalogSkill.skill_id).order_by(CatalogSkill.skill_id)))


def disabled_skills(engine: Engine) -> list[dict[str, Any]]:
    """`skill list-disabled --json`."""
    with Session(engine) as session:
        return [d.as_json() for d in kill_switch.list_disabled(session)]


def retry(engine: Engine, job_id: int) -> dict[str, Any]:
    _job(engine, job_id)  # 404 before 409
    try:
        new_id = jobs.retry(engine, job_id)
    except jobs.JobStateError as exc:
        raise Conflict(str(exc)) from None
    return _job(engine, new_id)


def cancel(engine: Engine, job_id: int) -> dict[str, Any]:
    _job(engine, job_id)
    try:
        jobs.cancel(engine, job_id)
    except jobs.JobStateError as exc:
        raise Conflict(str(exc)) from None
    return _job(engine, job_id)


# --- quarantine ---------------------------------------------------------------------------------

_QUARANTINE = text("""
SELECT id, received_at, org_id, event_id, reason FROM telemetry_quarantine
 WHERE CAST(:org AS text) IS NULL OR org_id = :org
 ORDER BY id DESC LIMIT :limit
""")
_QUARANTINE_REASONS = text("""
SELECT org_id, reason, count(*) AS n, max(received_at) AS last FROM telemetry_quarantine
 WHERE CAST(:org AS text) IS NULL OR org_id = :org
 GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2
""")


def quarantine(engine: Engine, *, org_id: str | None, limit: int) -> dict[str, Any]:
    """Quarantined events (without their raw JSON) and the counts by organisation and reason."""
    params = {"org": org_id, "limit": limit}
    with engine.connect() as conn:
        entries = [
            {k: plain(v) for k, v in r._mapping.items()} for r in conn.execute(_QUARANTINE, params)
        ]
        reasons = [
            {k: plain(v) for k, v in r._mapping.items()}
            for r in conn.execute(_QUARANTINE_REASONS, params)
        ]
    return {"entries": entries, "by_reason": reasons}


def replay(
    engine: Engine, settings: Settings, tenant_slug: str | None, *, dry_run: bool
) -> list[dict[str, Any]]:
    """`telemetry replay-quarantine [--tenant T] [--dry-run]`."""
    if tenant_slug is not None:
        check_tenant(engine, tenant_slug)
    results = replay_for_tenant(engine, tenant_slug, settings=settings.telemetry, dry_run=dry_run)
    return [
        {
            "org_id": r.org_id,
            "examined": r.examined,
            "attributed": r.attributed,
            "inserted": r.inserted,
            "still": dict(r.still),
            "dry_run": r.dry_run,
        }
        for r in results
    ]


# --- telemetry ----------------------------------------------------------------------------------

_DAILY = text("""
SELECT day, sum(invocations) AS invocations, sum(failures) AS failures,
       round(sum(failures)::numeric / nullif(sum(invocations), 0), 4) AS failure_rate,
       sum(cost_usd) AS cost_usd
  FROM telemetry_daily
 WHERE day >= :since
   AND (CAST(:tenant AS text) IS NULL OR tenant_slug = :tenant OR parent_tenant_slug = :tenant)
   AND (CAST(:skill AS text) IS NULL OR skill_id = :skill)
 GROUP BY day ORDER BY day
""")


def telemetry_summary(
    engine: Engine, *, since: dt.datetime, tenant_slug: str | None
) -> list[dict[str, Any]]:
    """`telemetry report`: per tenant and skill over the period."""
    if tenant_slug is not None:
        check_tenant(engine, tenant_slug)
    with engine.connect() as conn:
        figures = skill_report(conn, since=since, tenant=tenant_slug)
    return [{k: plain(v) for k, v in asdict(f).items()} for f in figures]


def telemetry_daily(
    engine: Engine, *, days: int, tenant_slug: str | None, skill: str | None
) -> list[dict[str, Any]]:
    """Per UTC day (from the analysts' view `telemetry_daily`): invocations, failures, failure
    rate and cost, of one tenant (with its sub-tenants) and/or skill, or of all."""
    if tenant_slug is not None:
        check_tenant(engine, tenant_slug)
    since = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=days - 1)
    params = {"since": since, "tenant": tenant_slug, "skill": skill}
    with engine.connect() as conn:
        return [{k: plain(v) for k, v in r._mapping.items()} for r in conn.execute(_DAILY, params)]


def telemetry_by_source(
    engine: Engine,
    *,
    since: dt.date,
    tenant_slug: str | None,
    skill: str | None = None,
    source: str | None = None,
) -> list[dict[str, Any]]:
    """`telemetry report --by-source [--skill S] [--source X]`: what each source says per
    tenant and skill (the analyst view `skill_usage_by_source`), from UTC day `since` on."""
    if tenant_slug is not None:
        check_tenant(engine, tenant_slug)
    with engine.connect() as conn:
        figures = source_report(conn, since=since, tenant=tenant_slug, skill=skill, source=source)
    return [{k: plain(v) for k, v in asdict(f).items()} for f in figures]


def telemetry_source_daily(
    engine: Engine, *, since: dt.date, tenant_slug: str | None, skill: str | None
) -> list[dict[str, Any]]:
    """Per UTC day: each source's figures (the analyst view), for the console's charts."""
    if tenant_slug is not None:
        check_tenant(engine, tenant_slug)
    with engine.connect() as conn:
        rows = source_daily(conn, since=since, tenant=tenant_slug, skill=skill)
    return [{k: plain(v) for k, v in r.items()} for r in rows]


def skill_ids(engine: Engine) -> list[str]:
    """Every catalog skill id, sorted (the console's skill filter)."""
    with Session(engine) as session:
        return list(session.scalars(select(CatalogSkill.skill_id).order_by(CatalogSkill.skill_id)))
