"""The operator HTTP API (`/api/v1/...`) and the OpenAPI document that describes it.

Each endpoint is declared once (`ENDPOINTS`): method, path, role, the pydantic models of its
query and body, and its handler; routing, validation, the error envelope and the OpenAPI
document are all made from that table, so the document cannot drift from the routes.

Authentication: `Authorization: Bearer <token>`; the console's session cookie also works, with
the header `X-CSRF-Token` on anything but GET. Errors are one envelope:
`{"error": {"status": 422, "code": "invalid_input", "message": "...", "field": "limit"}}`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from claresia_sync import __version__
from claresia_sync.center import actions, operations, skill_view
from claresia_sync.center import rollouts as rollout_ops
from claresia_sync.center.auth import Identity
from claresia_sync.center.context import Center, Forbidden
from claresia_sync.center.operations import Conflict, NotFound
from claresia_sync.db.engine import is_unavailable
from claresia_sync.db.models import JobStatus
from claresia_sync.errors import UserError, one_line
from claresia_sync.operator_tokens import Role
from claresia_sync.telemetry.report import parse_since

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
SESSION_COOKIE = "claresia_center"
CSRF_HEADER = "x-csrf-token"
SLUG = r"^[a-z0-9]+(-[a-z0-9]+)*$"
MAX_ID = 2**63 - 1


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def unavailable(exc: BaseException) -> ApiError:
    """The database is down (a restart, a failover): 503, one warning line, no traceback."""
    log.warning("command center: database unavailable: %s", one_line(exc)[:300])
    return ApiError(503, "unavailable", "the database is unavailable; retry in a moment")


def error_response(err: ApiError) -> JSONResponse:
    body = {
        "error": {
            "status": err.status,
            "code": err.code,
            "message": err.message,
            "field": err.field,
        }
    }
    headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else None
    return JSONResponse(body, status_code=err.status, headers=headers)


# --- inputs -------------------------------------------------------------------------------------


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class TenantQuery(Input):
    tenant: str | None = Field(default=None, pattern=SLUG, max_length=63)


class PlanQuery(Input):
    tenant: str | None = Field(
        default=None, pattern=SLUG, max_length=63, description="one tenant; none: all"
    )
    force: bool = Field(
        default=False, description="compare with each organisation's own skill list"
    )


class PublishBody(Input):
    tenant: str | None = Field(
        default=None, pattern=SLUG, max_length=63, description="one tenant; null: every tenant"
    )
    force: bool = Field(
        default=False,
        description="republish: check each skill against the organisation's own list",
    )


class JobsQuery(Input):
    status: JobStatus | None = None
    tenant: str | None = Field(default=None, pattern=SLUG, max_length=63)
    limit: int = Field(default=20, ge=1, le=500)


class QuarantineQuery(Input):
    org_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,128}$")
    limit: int = Field(default=50, ge=1, le=1000)


class ReplayBody(Input):
    tenant: str | None = Field(
        default=None, pattern=SLUG, max_length=63, description="one tenant's organisation"
    )
    dry_run: bool = False


class SummaryQuery(Input):
    since: str = Field(
        default="7d",
        pattern=r"^(\d{1,4}[mhdw]|\d{4}-\d{2}-\d{2})$",
        description="a span (7d, 24h, 30m, 2w) or a date (2026-11-01)",
    )
    tenant: str | None = Field(default=None, pattern=SLUG, max_length=63)


class DailyQuery(Input):
    days: int = Field(default=30, ge=1, le=366)
    tenant: str | None = Field(default=None, pattern=SLUG, max_length=63)
    skill: str | None = Field(default=None, pattern=SLUG, max_length=64)


SINCE = r"^(\d{1,4}[mhdw]|\d{4}-\d{2}-\d{2})$"
SourceName = Literal["audit-poller", "claude-code-otlp", "skills-analytics", "activity-feed"]


class BySourceQuery(Input):
    since: str = Field(
        default="30d",
        pattern=SINCE,
        description="whole UTC days from a span's start (30d, 2w) or a date (2026-11-01)",
    )
    tenant: str | None = Field(default=None, pattern=SLUG, max_length=63)
    skill: str | None = Field(default=None, pattern=SLUG, max_length=64)
    source: SourceName | None = Field(
        default=None, description="only the rows this source has something in"
    )


class SourceDailyQuery(Input):
    since: str = Field(default="30d", pattern=SINCE, description="as for /telemetry/by-source")
    tenant: str | None = Field(default=None, pattern=SLUG, max_length=63)
    skill: str | None = Field(default=None, pattern=SLUG, max_length=64)


class SkillQuery(Input):
    tenant: str | None = Field(
        default=None,
        pattern=SLUG,
        max_length=63,
        description="the tenant whose SKILL.md, history and use are shown; none: all (SKILL.md "
        "of the first tenant granted the skill)",
    )
    since: str = Field(default="30d", pattern=SINCE, description="the use's first UTC day")


class DisableBody(Input):
    tenant: str | None = Field(
        default=None, pattern=SLUG, max_length=63, description="one tenant; null: every tenant"
    )
    # Optional here, required in the handler after the role (as RolloutBody's release): a viewer
    # is refused (403, recorded) whatever it sent.
    reason: str | None = Field(
        default=None,
        min_length=1,
        max_length=1000,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="why it is taken away (audited, shown): one line of text (required)",
    )


class EnableBody(Input):
    tenant: str | None = Field(
        default=None,
        pattern=SLUG,
        max_length=63,
        description="one tenant; null: everywhere it is disabled",
    )


class ActionsQuery(Input):
    limit: int = Field(default=50, ge=1, le=1000)


class NoInput(Input):
    pass


class RolloutBody(Input):
    # Checked in the handler, after the role: a viewer is refused (and recorded) whatever it sent.
    release: int | None = Field(
        default=None, ge=1, le=2**31 - 1, description="the release to roll out (required)"
    )
    plan: str | None = Field(
        default=None,
        max_length=20_000,
        description="the plan as YAML (docs/releases.md); null: the default plan",
    )


class HaltBody(Input):
    reason: str | None = Field(default=None, max_length=1000, description="why (kept with it)")


@dataclass
class Call:
    """One authenticated, validated request."""

    center: Center
    who: Identity
    query: Any
    body: Any
    path: dict[str, Any]


Handler = Callable[[Call], Awaitable[Any]]


@dataclass(frozen=True)
class Endpoint:
    method: Literal["GET", "POST"]
    path: str
    summary: str
    handler: Handler
    role: Role = Role.VIEWER
    query: type[Input] = NoInput
    body: type[Input] | None = None
    status: int = 200
    tag: str = "read"


# --- handlers -----------------------------------------------------------------------------------


def _job_id(call: Call) -> int:
    return int(call.path["job_id"])


async def _whoami(call: Call) -> Any:
    return {"name": call.who.name, "role": str(call.who.role), "version": __version__}


async def _tenants(call: Call) -> Any:
    return await call.center.read(operations.tenants, call.center.engine)


async def _tenant(call: Call) -> Any:
    engine = call.center.engine
    found = await call.center.read(operations.tenant, engine, call.path["slug"])
    found["publications"] = await call.center.read(
        operations.publications, engine, tenant=call.path["slug"]
    )
    found["access"] = await call.center.read(operations.tenant_access, engine, call.path["slug"])
    return found


async def _organisations(call: Call) -> Any:
    return await call.center.read(operations.organisations, call.center.engine)


async def _plan(call: Call) -> Any:
    q: PlanQuery = call.query
    center = call.center
    return await operations.plan(
        center.engine, q.tenant, force=q.force, api_timeout=center.settings.api_timeout_s
    )


async def _publish(call: Call) -> Any:
    b: PublishBody = call.body
    action = actions.Action("publish", b.tenant, {"force": b.force})

    async def work() -> dict[str, Any]:
        return await call.center.read(
            operations.publish,
            call.center.engine,
            b.tenant,
            force=b.force,
            requested_by=f"center:{call.who.name}",
        )

    return await call.center.act(call.who, action, work)


async def _jobs(call: Call) -> Any:
    q: JobsQuery = call.query
    return await call.center.read(
        operations.list_jobs,
        call.center.engine,
        status=q.status,
        tenant_slug=q.tenant,
        limit=q.limit,
    )


async def _job(call: Call) -> Any:
    return await call.center.read(operations.job, call.center.engine, _job_id(call))


def _job_verb(name: str, fn: Callable[[Any, int], dict[str, Any]]) -> Handler:
    async def handler(call: Call) -> Any:
        job_id = _job_id(call)
        action = actions.Action(f"job.{name}", str(job_id))

        async def work() -> dict[str, Any]:
            return await call.center.read(fn, call.center.engine, job_id)

        return await call.center.act(call.who, action, work)

    return handler


async def _quarantine(call: Call) -> Any:
    q: QuarantineQuery = call.query
    return await call.center.read(
        operations.quarantine, call.center.engine, org_id=q.org_id, limit=q.limit
    )


async def _replay(call: Call) -> Any:
    b: ReplayBody = call.body
    action = actions.Action("quarantine.replay", b.tenant, {"dry_run": b.dry_run})

    async def work() -> dict[str, Any]:
        results = await call.center.read(
            operations.replay, call.center.engine, call.center.settings, b.tenant, dry_run=b.dry_run
        )
        return {"results": results}

    return await call.center.act(call.who, action, work)


async def _summary(call: Call) -> Any:
    q: SummaryQuery = call.query
    try:
        since = parse_since(q.since)
    except (UserError, ValueError, OverflowError) as exc:
        raise ApiError(422, "invalid_input", f"since: {one_line(exc)}", "since") from None
    return await call.center.read(
        operations.telemetry_summary, call.center.engine, since=since, tenant_slug=q.tenant
    )


async def _daily(call: Call) -> Any:
    q: DailyQuery = call.query
    return await call.center.read(
        operations.telemetry_daily,
        call.center.engine,
        days=q.days,
        tenant_slug=q.tenant,
        skill=q.skill,
    )


def since_day(value: str) -> dt.date:
    """The UTC day a `since` value starts on (the analyst view's grain)."""
    try:
        return parse_since(value).astimezone(dt.UTC).date()
    except (UserError, ValueError, OverflowError) as exc:
        raise ApiError(422, "invalid_input", f"since: {one_line(exc)}", "since") from None


async def _by_source(call: Call) -> Any:
    q: BySourceQuery = call.query
    return await call.center.read(
        operations.telemetry_by_source,
        call.center.engine,
        since=since_day(q.since),
        tenant_slug=q.tenant,
        skill=q.skill,
        source=q.source,
    )


async def _source_daily(call: Call) -> Any:
    q: SourceDailyQuery = call.query
    return await call.center.read(
        operations.telemetry_source_daily,
        call.center.engine,
        since=since_day(q.since),
        tenant_slug=q.tenant,
        skill=q.skill,
    )


async def _skill(call: Call) -> Any:
    q: SkillQuery = call.query
    return await call.center.read(
        skill_view.skill,
        call.center.engine,
        call.path["skill_id"],
        tenant=q.tenant,
        since=since_day(q.since),
    )


async def _disabled(call: Call) -> Any:
    return await call.center.read(operations.disabled_skills, call.center.engine)


async def _disable(call: Call) -> Any:
    b: DisableBody = call.body
    skill_id = call.path["skill_id"]
    if b.reason is None and call.who.can_act:
        raise ApiError(422, "invalid_input", "body reason: Field required", "reason")
    action = actions.Action("skill.disable", skill_id, {"tenant": b.tenant, "reason": b.reason})

    async def work() -> dict[str, Any]:
        assert b.reason is not None  # checked above for every caller that may act
        return await call.center.read(
            operations.disable_skill,
            call.center.engine,
            skill_id,
            b.tenant,
            reason=b.reason,
            by=f"center:{call.who.name}",
        )

    return await call.center.act(call.who, action, work)


async def _enable(call: Call) -> Any:
    b: EnableBody = call.body
    skill_id = call.path["skill_id"]
    action = actions.Action("skill.enable", skill_id, {"tenant": b.tenant})

    async def work() -> dict[str, Any]:
        return await call.center.read(
            operations.enable_skill,
            call.center.engine,
            skill_id,
            b.tenant,
            by=f"center:{call.who.name}",
        )

    return await call.center.act(call.who, action, work)


async def _releases(call: Call) -> Any:
    return await call.center.read(rollout_ops.releases, call.center.engine)


async def _rollouts(call: Call) -> Any:
    return await call.center.read(rollout_ops.rollouts, call.center.engine)


async def _rollout(call: Call) -> Any:
    return await call.center.read(
        rollout_ops.rollout, call.center.engine, int(call.path["rollout_id"])
    )


async def _rollout_start(call: Call) -> Any:
    b: RolloutBody = call.body
    action = actions.Action("rollout.start", str(b.release), {"default_plan": b.plan is None})

    async def work() -> dict[str, Any]:
        if b.release is None:
            raise UserError("body release: required (the release to roll out)")
        return await call.center.read(
            rollout_ops.start, call.center.engine, b.release, b.plan, f"center:{call.who.name}"
        )

    return await call.center.act(call.who, action, work)


def _rollout_verb(name: str) -> Handler:
    async def handler(call: Call) -> Any:
        rollout_id = int(call.path["rollout_id"])
        reason = call.body.reason if isinstance(call.body, HaltBody) else None
        verb = {
            "promote": rollout_ops.promote,
            "rollback": rollout_ops.rollback,
            "halt": rollout_ops.halter(reason),
        }[name]
        action = actions.Action(f"rollout.{name}", str(rollout_id), {"reason": reason})

        async def work() -> dict[str, Any]:
            return await call.center.read(
                rollout_ops.act, call.center.engine, rollout_id, verb, f"center:{call.who.name}"
            )

        return await call.center.act(call.who, action, work)

    return handler


async def _actions(call: Call) -> Any:
    q: ActionsQuery = call.query
    return await call.center.read(actions.recent, call.center.engine, q.limit)


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", "/whoami", "The caller's token name and role", _whoami),
    Endpoint("GET", "/tenants", "Every tenant and organisation and how it stands", _tenants),
    Endpoint(
        "GET", "/tenants/{slug}", "One tenant: its publications and access in words", _tenant
    ),
    Endpoint(
        "GET", "/organisations",
        "Every target's organisations, each telemetry source's freshness and last error",
        _organisations,
    ),
    Endpoint(
        "GET", "/plan", "What a publish would change (a dry run: writes nothing)", _plan,
        query=PlanQuery,
    ),
    Endpoint(
        "POST", "/publish", "Queue a publish (or with force, a republish) job", _publish,
        role=Role.OPERATOR, body=PublishBody, status=202, tag="act",
    ),
    Endpoint("GET", "/jobs", "Publish jobs, newest first", _jobs, query=JobsQuery),
    Endpoint(
        "GET", "/jobs/{job_id}", "One job: status, counts, errors, per-skill results", _job
    ),
    Endpoint(
        "POST", "/jobs/{job_id}/retry", "Queue a new job with the scope of a finished one",
        _job_verb("retry", operations.retry), role=Role.OPERATOR, status=202, tag="act",
    ),
    Endpoint(
        "POST", "/jobs/{job_id}/cancel", "Cancel a queued job or stop a running one",
        _job_verb("cancel", operations.cancel), role=Role.OPERATOR, tag="act",
    ),
    Endpoint(
        "GET", "/quarantine", "Quarantined audit events and their reasons", _quarantine,
        query=QuarantineQuery,
    ),
    Endpoint(
        "POST", "/quarantine/replay", "Normalise quarantined events again", _replay,
        role=Role.OPERATOR, body=ReplayBody, tag="act",
    ),
    Endpoint(
        "GET", "/telemetry/summary", "Per tenant and skill: invocations, failures, cost",
        _summary, query=SummaryQuery,
    ),
    Endpoint(
        "GET", "/telemetry/daily", "Per UTC day: invocations, failure rate, cost", _daily,
        query=DailyQuery,
    ),
    Endpoint(
        "GET", "/telemetry/by-source",
        "Per tenant and skill, what each source says (audit log, Claude Code, skills "
        "analytics, activity feed): `telemetry report --by-source`",
        _by_source, query=BySourceQuery,
    ),
    Endpoint(
        "GET", "/telemetry/by-source/daily", "Per UTC day, what each source says", _source_daily,
        query=SourceDailyQuery,
    ),
    Endpoint(
        "GET", "/skills/{skill_id}",
        "One skill: its SKILL.md as a tenant's users get it, where it is live on which target, "
        "its history, its use across sources",
        _skill, query=SkillQuery,
    ),
    Endpoint(
        "POST", "/skills/{skill_id}/disable",
        "Kill switch: take a skill away from every user now, ahead of all other jobs",
        _disable, role=Role.OPERATOR, body=DisableBody, status=202, tag="act",
    ),
    Endpoint(
        "POST", "/skills/{skill_id}/enable", "Give a disabled skill back (a publish job)",
        _enable, role=Role.OPERATOR, body=EnableBody, status=202, tag="act",
    ),
    Endpoint(
        "GET", "/kill-switch", "Skills the kill switch took away: scope, who, when, why",
        _disabled,
    ),
    Endpoint(
        "GET", "/actions", "What was done through the Command Center, newest first", _actions,
        query=ActionsQuery,
    ),
    Endpoint("GET", "/releases", "Catalog releases: who, when, current, pinned tenants", _releases),
    Endpoint("GET", "/rollouts", "Rollouts, newest first", _rollouts),
    Endpoint(
        "GET", "/rollouts/{rollout_id}",
        "One rollout: waves, tenants and their jobs, guardrail readings, next step", _rollout,
    ),
    Endpoint(
        "POST", "/rollouts", "Start rolling a release out in waves (its first wave moves now)",
        _rollout_start, role=Role.OPERATOR, body=RolloutBody, status=202, tag="act",
    ),
    Endpoint(
        "POST", "/rollouts/{rollout_id}/promote",
        "Pass the current wave now and move the next one", _rollout_verb("promote"),
        role=Role.OPERATOR, tag="act",
    ),
    Endpoint(
        "POST", "/rollouts/{rollout_id}/halt", "Stop advancing the rollout",
        _rollout_verb("halt"), role=Role.OPERATOR, body=HaltBody, tag="act",
    ),
    Endpoint(
        "POST", "/rollouts/{rollout_id}/rollback",
        "Every tenant of the rollout back on its previous release, republished",
        _rollout_verb("rollback"), role=Role.OPERATOR, status=202, tag="act",
    ),
)  # fmt: skip


# --- request handling ---------------------------------------------------------------------------


def authenticate(center: Center, request: Request, *, unsafe: bool) -> Identity:
    """The caller: a bearer token, else the console's session cookie (plus its CSRF header for
    anything that is not a read)."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "unauthenticated", "use the header Authorization: Bearer <token>")
        who = center.tokens.authenticate(token.strip())
        if who is None:
            raise ApiError(401, "unauthenticated", "the token is not one of the configured ones")
        return who
    cookie = request.cookies.get(SESSION_COOKIE)
    session = center.tokens.session(cookie) if cookie else None
    if session is None:
        raise ApiError(401, "unauthenticated", "a bearer token is needed (Authorization header)")
    who, csrf = session
    if unsafe and request.headers.get(CSRF_HEADER, "") != csrf:
        raise ApiError(403, "csrf", "the X-CSRF-Token header is missing or wrong", CSRF_HEADER)
    return who


def _field(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "body"


def _validate(model: type[Input], data: Any, where: str) -> Input:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = _field(err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        raise ApiError(422, "invalid_input", f"{where} {field}: {message}", field) from None


def _query(request: Request, model: type[Input]) -> Input:
    data: dict[str, Any] = {}
    for key, value in request.query_params.multi_items():
        if key in data:
            raise ApiError(422, "invalid_input", f"query {key}: given more than once", key)
        data[key] = value
    return _validate(model, data, "query")


async def _body(request: Request, model: type[Input] | None) -> Input | None:
    if model is None:
        return None
    raw = await request.body()
    if not raw.strip():
        return _validate(model, {}, "body")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(422, "invalid_input", "body: not valid JSON", "body") from None
    if not isinstance(data, dict):
        raise ApiError(422, "invalid_input", "body: must be a JSON object", "body")
    return _validate(model, data, "body")


def _path(request: Request) -> dict[str, Any]:
    params = dict(request.path_params)
    for key in ("job_id", "rollout_id"):
        if key in params:
            value = str(params[key])
            if not value.isdigit() or not 1 <= int(value) <= MAX_ID:
                raise ApiError(422, "invalid_input", f"path {key}: must be a positive integer", key)
            params[key] = int(value)
    if "skill_id" in params:
        value = str(params["skill_id"])
        if len(value) > 64 or not re.match(SLUG, value):
            raise ApiError(
                422, "invalid_input", "path skill_id: not a skill id (a-z, 0-9, -)", "skill_id"
            )
    if "slug" in params:
        try:
            TenantQuery(tenant=str(params["slug"]))
        except ValidationError:
            raise ApiError(
                422, "invalid_input", "path slug: not a tenant slug (a-z, 0-9, -)", "slug"
            ) from None
    return params


def route(center: Center, endpoint: Endpoint) -> Route:
    async def handle(request: Request) -> Response:
        try:
            who = authenticate(center, request, unsafe=endpoint.method != "GET")
            path = _path(request)
            call = Call(center, who, _query(request, endpoint.query), None, path)
            call.body = await _body(request, endpoint.body)
            result = await endpoint.handler(call)
        except ApiError as err:
            return error_response(err)
        except Forbidden as exc:
            return error_response(ApiError(403, "forbidden", str(exc)))
        except NotFound as exc:
            return error_response(ApiError(404, "not_found", str(exc)))
        except Conflict as exc:
            return error_response(ApiError(409, "conflict", str(exc)))
        except UserError as exc:
            return error_response(ApiError(422, "invalid_input", str(exc)))
        except Exception as exc:
            if not is_unavailable(exc):
                raise  # a bug: the app's 500 handler logs it and answers the envelope
            return error_response(unavailable(exc))
        return JSONResponse(result, status_code=endpoint.status)

    return Route(PREFIX + endpoint.path, handle, methods=[endpoint.method])


def api_routes(center: Center) -> list[Route]:
    async def openapi_doc(_: Request) -> Response:
        return JSONResponse(openapi())

    return [
        Route(PREFIX + "/openapi.json", openapi_doc, methods=["GET"]),
        *(route(center, e) for e in ENDPOINTS),
    ]


# --- the OpenAPI document -----------------------------------------------------------------------

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["status", "code", "message"],
            "properties": {
                "status": {"type": "integer"},
                "code": {"type": "string"},
                "message": {"type": "string"},
                "field": {"type": ["string", "null"]},
            },
        }
    },
}
_ERRORS = {
    "401": "no token, or not a configured one",
    "403": "the viewer role may not act (or the console's CSRF header is missing)",
    "404": "unknown tenant, job or skill",
    "409": "the job (or skill) is not in a state for this",
    "422": "bad input: the message and `field` name it",
    "503": "the database is unavailable (retry)",
}


def _parameters(endpoint: Endpoint) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = []
    for key in ("job_id", "rollout_id"):
        if f"{{{key}}}" in endpoint.path:
            params.append(
                {
                    "name": key,
                    "in": "path",
                    "required": True,
                    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                }
            )
    if "{skill_id}" in endpoint.path:
        params.append(
            {
                "name": "skill_id",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "pattern": SLUG, "maxLength": 64},
            }
        )
    if "{slug}" in endpoint.path:
        params.append(
            {
                "name": "slug",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "pattern": SLUG, "maxLength": 63},
            }
        )
    schema = endpoint.query.model_json_schema()
    for name, prop in schema.get("properties", {}).items():
        prop = _inline(prop, schema.get("$defs", {}))
        params.append({"name": name, "in": "query", "required": False, "schema": prop})
    return params


def _inline(prop: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """A property with its `$ref`s replaced by the definitions (for parameters)."""
    text = json.dumps(prop)
    for name, definition in defs.items():
        text = text.replace(json.dumps({"$ref": f"#/$defs/{name}"}), json.dumps(definition))
    out: dict[str, Any] = json.loads(text)
    return out


def openapi() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for e in ENDPOINTS:
        responses: dict[str, Any] = {
            str(e.status): {
                "description": "OK",
                "content": {"application/json": {"schema": {}}},
            }
        }
        codes = ["401", "422", "503"]
        if e.role == Role.OPERATOR:
            codes.append("403")
        if "{" in e.path or e.query is not NoInput:
            codes.append("404")
        if "{job_id}/" in e.path or e.path.endswith("/enable"):
            codes.append("409")
        for code in codes:
            responses[code] = {
                "description": _ERRORS[code],
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
        op: dict[str, Any] = {
            "summary": e.summary,
            "operationId": f"{e.method.lower()}_{e.path.strip('/').replace('/', '_')}".replace(
                "{", ""
            ).replace("}", ""),
            "tags": [e.tag],
            "parameters": _parameters(e),
            "responses": responses,
            "x-role": str(e.role),
        }
        if e.body is not None:
            schema = e.body.model_json_schema()
            op["requestBody"] = {
                "required": False,
                "content": {
                    "application/json": {"schema": _inline(schema, schema.pop("$defs", {}))}
                },
            }
        paths.setdefault(PREFIX + e.path, {})[e.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "claresia-sync Command Center",
            "version": __version__,
            "description": "The operator API of claresia-sync: tenants, plans, publish jobs, "
            "quarantine, telemetry, releases and rollouts. `viewer` tokens read; `operator` "
            "tokens also act.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": ERROR_SCHEMA},
        },
        "paths": paths,
    }
