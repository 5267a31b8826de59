"""The emulator's HTTP app (Starlette): docs/interfaces.md section 3, the real endpoints of
docs/real-api.md (`real_api.RealApi`: Plugins API, rbac groups, Skills API), plus control routes.

API routes (`/v1/...`) check, in this order: `anthropic-version` (400), `x-api-key` (401),
the scope (403 naming it), the organisation of the path (404 unknown, 403 another org's).
Errors have the real shape `{"type":"error","error":{...},"request_id":...}` and every answer a
`request-id` header.

Control routes (`/_emulator/...`) take no key: the emulator listens on loopback by default.
    POST /_emulator/invocations   {org_id, count, failure_rate, user_id?, skill?, workspace_id?,
                                  seed?}: simulated skill.invoked/skill.failed audit events; for
                                  a Claude Enterprise organisation {org_id, count, user_id?,
                                  skill?, day?, product?, seed?}: uses of plugin skills, counted
                                  in its skills analytics (see emulator/analytics.py)
    POST /_emulator/orgs/{org_id}/analytics {lag_days, repeat_rows}: days before analytics serve a
                                  day; rows each page lists twice
    POST /_emulator/orgs/{org_id}/admin {action, plugin_id, ...}: an administrator's write in
                                  claude.ai (delete a plugin, change an installation setting),
                                  in the activity feed as a user_actor's (drift); a write
                                  with another admin key: `state.add_admin_key`
    POST /_emulator/audit_events  {org_id, events: [...]}: append raw events (any type/shape)
    GET  /_emulator/visible?org_id=&user_id=   skills in that user's @ picker (section 3 skills,
                                  and Claude Enterprise plugins' skills by installation settings)
    GET  /_emulator/stats, POST /_emulator/stats/reset   API calls by method, route, status
    GET|POST /_emulator/faults    fault configuration (see faults.FaultConfig); `{}` clears
    POST /_emulator/reset         back to the seed, no faults, no stats
    POST /_emulator/orgs/{org_id} {zero_data_retention?: bool, skill_delete?: direct|versions_first}
    POST /_emulator/orgs/{org_id}/org_skills {name}: an organisation skill made in claude.ai
    POST /_emulator/plugins/{id}/versions/{v}/scan {status, assessment?, reason?}: a scan ends
    GET  /_emulator/health
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import os
import socket
import struct
from collections.abc import Callable
from typing import Any, get_args
from urllib.parse import parse_qsl, urlencode

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from claresia_sync.emulator.activity import user_actor
from claresia_sync.emulator.common import bad_request, forbidden, not_found
from claresia_sync.emulator.faults import (
    FAULT_CODE,
    LIMIT_UNCAPPED,
    CallStats,
    CorruptMode,
    Fault,
    FaultConfig,
    Faults,
    corrupt_answer,
    fetch_factor,
)
from claresia_sync.emulator.plugins import PREFERENCES
from claresia_sync.emulator.real_api import (
    RealApi,
    authenticate,
    plugin_subject,
    preference_subject,
)
from claresia_sync.emulator.responses import (
    RID,
    error_body,
    guard,
    json_body,
    json_response,
    request_key,
)
from claresia_sync.emulator.skills_api import SkillDelete
from claresia_sync.emulator.state import EmulatorState, KeyRecord

# Set by the server's protocol for each connection, so a fault can reset the TCP connection.
CURRENT_TRANSPORT: contextvars.ContextVar[asyncio.Transport | None] = contextvars.ContextVar(
    "emulator_transport", default=None
)
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}
_MAX_LIMIT = 1000
# The user agent of an administrator's writes in claude.ai (the admin route).
_BROWSER = "Mozilla/5.0 (emulated claude.ai)"


def _limit(request: Request) -> tuple[int, str | None]:
    raw = request.query_params.get("limit", "20")
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= _MAX_LIMIT and not (limit >= 1 and request.scope.get(LIMIT_UNCAPPED)):
        raise bad_request(f"limit must be an integer from 1 to {_MAX_LIMIT}, not {raw!r}")
    return limit, request.query_params.get("after_id") or None


class EmulatorApp:
    """Routes over one `EmulatorState`, `Faults` and `CallStats`."""

    def __init__(self, state: EmulatorState, faults: Faults, stats: CallStats) -> None:
        self.state = state
        self.faults = faults
        self.stats = stats
        api = [
            Route("/v1/organizations/me", guard(self.me), methods=["GET"]),
            Route("/v1/organizations/workspaces", guard(self.workspaces), methods=["GET"]),
            Route("/v1/organizations/rbac_groups", guard(self.rbac_groups), methods=["GET"]),
            Route("/v1/organizations/{org_id}/skills", guard(self.skills), methods=["GET"]),
            Route("/v1/organizations/{org_id}/skills", guard(self.create), methods=["POST"]),
            Route(
                "/v1/organizations/{org_id}/skills/{skill_id}",
                guard(self.get_skill),
                methods=["GET"],
            ),
            Route(
                "/v1/organizations/{org_id}/skills/{skill_id}",
                guard(self.delete),
                methods=["DELETE"],
            ),
            Route(
                "/v1/organizations/{org_id}/skills/{skill_id}/versions",
                guard(self.version),
                methods=["POST"],
            ),
            Route(
                "/v1/organizations/{org_id}/skills/{skill_id}/access",
                guard(self.access),
                methods=["PUT"],
            ),
            Route("/v1/organizations/{org_id}/audit_logs", guard(self.audit), methods=["GET"]),
        ]
        control = [
            Route("/_emulator/health", self.health, methods=["GET"]),
            Route("/_emulator/invocations", guard(self.invocations), methods=["POST"]),
            Route("/_emulator/audit_events", guard(self.audit_events), methods=["POST"]),
            Route("/_emulator/visible", guard(self.visible), methods=["GET"]),
            Route("/_emulator/stats", self.get_stats, methods=["GET"]),
            Route("/_emulator/stats/reset", self.reset_stats, methods=["POST"]),
            Route("/_emulator/faults", self.get_faults, methods=["GET"]),
            Route("/_emulator/faults", guard(self.set_faults), methods=["POST"]),
            Route("/_emulator/reset", self.reset, methods=["POST"]),
            Route("/_emulator/orgs/{org_id}", guard(self.set_org), methods=["POST"]),
            Route("/_emulator/orgs/{org_id}/org_skills", guard(self.org_skill), methods=["POST"]),
            Route(
                "/_emulator/orgs/{org_id}/analytics", guard(self.set_analytics), methods=["POST"]
            ),
            Route("/_emulator/orgs/{org_id}/admin", guard(self.admin_write), methods=["POST"]),
            Route(
                "/_emulator/plugins/{plugin_id}/versions/{version}/scan",
                guard(self.scan),
                methods=["POST"],
            ),
        ]
        self.real = RealApi(state, faults)
        # First: `/v1/organizations/analytics/skills` would match `{org_id}/skills`.
        api = [*self.real.routes(), *api]
        self.api_routes: list[BaseRoute] = list(api)
        self.starlette = Starlette(routes=[*api, *control])

    def asgi(self) -> ASGIApp:
        return _FaultsAndStats(
            self.starlette, self.api_routes, self.faults, self.stats, self._org_of
        )

    def _org_of(self, headers: Headers) -> str | None:
        """The organisation of a request's key (None: no key, or not one of the seed's)."""
        value = request_key(headers)
        key = self.state.key(value) if value else None
        return key.org_id if key is not None else None

    # -- auth ----------------------------------------------------------------------------------

    def principal(
        self, request: Request, scope: str | None, org_id: str | None = None
    ) -> KeyRecord:
        key = authenticate(self.state, request)
        if scope is not None and scope not in key.scopes:
            raise forbidden(
                f"this admin key lacks the scope {scope}, required for "
                f"{request.method} {request.url.path}"
            )
        if org_id is not None and org_id != key.org_id:
            if org_id not in self.state.orgs:
                raise not_found(f"organization {org_id!r} not found")
            raise forbidden(f"this admin key does not belong to organization {org_id}")
        return key

    # -- API -----------------------------------------------------------------------------------

    def _enterprise_key(self, request: Request) -> bool:
        """A Claude Enterprise admin key gets the real API's answers on routes section 3 shares."""
        key = self.state.key(request_key(request.headers) or "")
        return key is not None and key.family == "enterprise_admin"

    async def me(self, request: Request) -> Response:
        if self._enterprise_key(request):
            return self.real.me(request)
        key = self.principal(request, None)
        return json_response(self.state.organization_json(key.org_id))

    async def workspaces(self, request: Request) -> Response:
        key = self.principal(request, "workspaces:read")
        limit, after = _limit(request)
        page = self.state.list_workspaces(key.org_id, limit, after, key.workspaces)
        return json_response(page)

    async def rbac_groups(self, request: Request) -> Response:
        if self._enterprise_key(request):
            return self.real.list_groups(request)
        key = self.principal(request, "workspaces:read")
        limit, after = _limit(request)
        return json_response(self.state.list_rbac_groups(key.org_id, limit, after))

    async def skills(self, request: Request) -> Response:
        org_id = request.path_params["org_id"]
        self.principal(request, "skills:read", org_id)
        limit, after = _limit(request)
        prefix = request.query_params.get("name_prefix") or None
        return json_response(self.state.list_skills(org_id, limit, after, prefix))

    async def create(self, request: Request) -> Response:
        org_id = request.path_params["org_id"]
        self.principal(request, "skills:write", org_id)
        body = await json_body(request)
        record = self.state.create_skill(org_id, body)
        return json_response(record.to_json(), 201)

    async def get_skill(self, request: Request) -> Response:
        org_id = request.path_params["org_id"]
        self.principal(request, "skills:read", org_id)
        return json_response(self.state.skill(org_id, request.path_params["skill_id"]).to_json())

    async def delete(self, request: Request) -> Response:
        org_id, skill_id = request.path_params["org_id"], request.path_params["skill_id"]
        self.principal(request, "skills:write", org_id)
        self.state.delete_skill(org_id, skill_id)
        return json_response({"type": "skill_deleted", "id": skill_id})

    async def version(self, request: Request) -> Response:
        org_id, skill_id = request.path_params["org_id"], request.path_params["skill_id"]
        self.principal(request, "skills:write", org_id)
        body = await json_body(request)
        return json_response(self.state.create_version(org_id, skill_id, body).to_json(), 201)

    async def access(self, request: Request) -> Response:
        org_id, skill_id = request.path_params["org_id"], request.path_params["skill_id"]
        key = self.principal(request, "skills:write", org_id)
        body = await json_body(request)
        ws, groups = body.get("workspace_ids"), body.get("rbac_group_ids")
        for field, value in (("workspace_ids", ws), ("rbac_group_ids", groups)):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise bad_request(f"{field} must be a list of strings")
        assert isinstance(ws, list) and isinstance(groups, list)
        return json_response(self.state.set_access(org_id, skill_id, ws, groups, key).to_json())

    async def audit(self, request: Request) -> Response:
        org_id = request.path_params["org_id"]
        self.principal(request, "audit:read", org_id)
        limit, after = _limit(request)
        raw_types = request.query_params.get("event_types")
        types = {t for t in raw_types.split(",") if t} if raw_types else None
        body = self.state.audit_page(
            org_id, limit, after, types, redeliver=self.faults.redeliver() if after else 0
        )
        return Response(body, 200, media_type="application/json")

    # -- control -------------------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        return json_response({"ok": True})

    async def invocations(self, request: Request) -> Response:
        body = await json_body(request)
        unknown = set(body) - {
            "org_id",
            "count",
            "failure_rate",
            "user_id",
            "skill",
            "workspace_id",
            "seed",
            "day",
            "product",
        }
        if unknown:
            raise bad_request(f"unknown field(s) {sorted(unknown)}")
        org_id = body.get("org_id")
        if not isinstance(org_id, str):
            raise bad_request("org_id is required")
        count = body.get("count", 1)
        rate = body.get("failure_rate", 0.0)
        if not isinstance(count, int) or not isinstance(rate, int | float):
            raise bad_request("count must be an integer and failure_rate a number")
        if self.state.org(org_id).claude_enterprise:
            return await self._enterprise_invocations(org_id, count, body)
        # Big batches run off the event loop so the API keeps answering meanwhile.
        ids = await run_in_threadpool(
            lambda: self.state.generate_invocations(
                org_id,
                count,
                failure_rate=float(rate),
                user_id=body.get("user_id"),
                skill=body.get("skill"),
                workspace_id=body.get("workspace_id"),
                seed=body.get("seed"),
            )
        )
        return json_response(
            {
                "generated": count,
                "first_id": ids[0] if ids else None,
                "last_id": ids[-1] if ids else None,
            },
            201,
        )

    async def _enterprise_invocations(
        self, org_id: str, count: int, body: dict[str, Any]
    ) -> Response:
        """Claude Enterprise: uses of plugin skills, into the skills analytics (no audit event)."""
        day = body.get("day")
        try:
            when = dt.date.fromisoformat(day) if day is not None else None
        except (TypeError, ValueError):
            raise bad_request(f"day must be YYYY-MM-DD, not {day!r}") from None
        generated = await run_in_threadpool(
            lambda: self.state.generate_enterprise_invocations(
                org_id,
                count,
                user_id=body.get("user_id"),
                skill=body.get("skill"),
                day=when,
                product=body.get("product"),
                seed=body.get("seed"),
            )
        )
        return json_response({"generated": generated, "analytics": True}, 201)

    async def set_analytics(self, request: Request) -> Response:
        """`{lag_days, repeat_rows}` (either): how many days old a day must be before the
        analytics serve it; how many of its first rows each page lists again at its end."""
        body = await json_body(request)
        knobs = ("lag_days", "repeat_rows")
        if (
            not body
            or not set(body) <= set(knobs)
            or not all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in body.values()
            )
        ):
            raise bad_request("expected {lag_days: integer >= 0, repeat_rows: integer >= 0}")
        with self.state.lock:
            analytics = self.state.org(request.path_params["org_id"]).analytics
            for knob in knobs:
                if knob in body:
                    setattr(analytics, knob, body[knob])
            return json_response({k: getattr(analytics, k) for k in knobs})

    async def audit_events(self, request: Request) -> Response:
        body = await json_body(request)
        events = body.get("events")
        if not isinstance(body.get("org_id"), str) or not isinstance(events, list):
            raise bad_request("expected {org_id, events: [...]}")
        if not all(isinstance(e, dict) for e in events):
            raise bad_request("each event must be an object")
        ids = self.state.append_events(body["org_id"], events)
        return json_response({"ids": ids}, 201)

    async def visible(self, request: Request) -> Response:
        org_id = request.query_params.get("org_id")
        user_id = request.query_params.get("user_id")
        if not org_id or not user_id:
            raise bad_request("org_id and user_id are required")
        skills = self.state.visible_skills(org_id, user_id)
        data = [{"id": s.id, "name": s.name, "display_title": s.display_title} for s in skills]
        return json_response({"data": data + self.state.visible_plugin_skills(org_id, user_id)})

    async def get_stats(self, request: Request) -> Response:
        return json_response(self.stats.to_json())

    async def reset_stats(self, request: Request) -> Response:
        self.stats.reset()
        return json_response({"ok": True})

    async def get_faults(self, request: Request) -> Response:
        return json_response(self.faults.config.model_dump())

    async def set_faults(self, request: Request) -> Response:
        try:
            config = FaultConfig.model_validate(await json_body(request))
        except ValidationError as exc:
            first = exc.errors()[0]
            raise bad_request(
                f"faults: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
            ) from None
        self.faults.configure(config)
        return json_response(config.model_dump())

    async def reset(self, request: Request) -> Response:
        self.state.reset()
        self.faults.clear()
        self.stats.reset()
        return json_response({"ok": True})

    async def org_skill(self, request: Request) -> Response:
        """An organisation skill made by hand in claude.ai: plugins may not hold its name."""
        body = await json_body(request)
        name = body.get("name")
        if not isinstance(name, str) or set(body) != {"name"}:
            raise bad_request("expected {name: str}")
        with self.state.lock:
            catalog = self.state.org(request.path_params["org_id"]).plugins
            if catalog is None:
                raise bad_request("organization skills are emulated for Claude Enterprise only")
            catalog.org_skills.add(name)
        return json_response({"name": name}, 201)

    async def scan(self, request: Request) -> Response:
        """claude.ai's content scan of a plugin version ended: `{status, assessment?, reason?}`."""
        body = await json_body(request)
        status, assessment = body.get("status"), body.get("assessment")
        if status not in ("completed", "errored", "processing") or assessment not in (
            None,
            "pass",
            "warn",
            "fail",
            "unknown",
        ):
            raise bad_request("expected {status: completed|errored|processing, assessment?}")
        scan = {"status": status, "assessment": assessment, "reason": body.get("reason")}
        p = request.path_params
        with self.state.lock:
            for org in self.state.orgs.values():
                if org.plugins is not None and p["plugin_id"] in org.plugins.plugins:
                    version = org.plugins.set_scan(p["plugin_id"], p["version"], scan)
                    return json_response(version.to_json())
        raise not_found(f"plugin {p['plugin_id']!r} not found")

    async def admin_write(self, request: Request) -> Response:
        """A write an administrator makes in claude.ai, behind claresia-sync's back (drift):
        `{action: delete_plugin | set_installation | remove_installation, plugin_id, target?,
        installation_preference?, user_id?}`; it shows in the activity feed as theirs."""
        body = await json_body(request)
        action, plugin_id = body.get("action"), body.get("plugin_id")
        target = body.get("target", "organization")
        if action not in ("delete_plugin", "set_installation", "remove_installation") or not (
            isinstance(plugin_id, str) and isinstance(target, str)
        ):
            raise bad_request(
                "expected {action: delete_plugin|set_installation|remove_installation, "
                "plugin_id, target?, installation_preference?, user_id?}"
            )
        org_id = request.path_params["org_id"]
        with self.state.lock:
            org = self.state.org(org_id)
            if org.plugins is None:
                raise bad_request("plugins are emulated for Claude Enterprise only")
            if target != "organization" and target not in org.rbac_groups:
                raise bad_request(f"target must be 'organization' or a group of {org_id}")
            user = org.users.get(body.get("user_id") or "") or next(iter(org.users.values()))
            client = request.client.host if request.client else "127.0.0.1"
            actor = user_actor(user.id, user.email, client, _BROWSER)
            if action == "delete_plugin":
                subject = plugin_subject(org.plugins.get(plugin_id))
                org.plugins.delete(plugin_id)
                self.state.record_activity(org_id, "claude_plugin_deleted", actor, **subject)
            else:
                subject = preference_subject(org, plugin_id, target)
                preference = body.get("installation_preference")
                if action == "set_installation":
                    if preference not in PREFERENCES:
                        raise bad_request(f"installation_preference must be one of {PREFERENCES}")
                    org.plugins.set_setting(plugin_id, target, preference)
                else:
                    org.plugins.remove_setting(plugin_id, target)
                    preference = None
                self.state.record_activity(
                    org_id,
                    "plugin_installation_preference_updated",
                    actor,
                    **subject,
                    action="updated" if preference else "deleted",
                    installation_preference=preference,
                )
        return json_response({"ok": True, "action": action}, 201)

    async def set_org(self, request: Request) -> Response:
        body = await json_body(request)
        org_id = request.path_params["org_id"]
        zdr, delete = body.get("zero_data_retention", False), body.get("skill_delete", "direct")
        if (
            not body
            or set(body) - {"zero_data_retention", "skill_delete"}
            or not isinstance(zdr, bool)
            or delete not in get_args(SkillDelete)
        ):
            raise bad_request(
                "expected {zero_data_retention?: true|false, skill_delete?: direct|versions_first}"
            )
        if "zero_data_retention" in body:
            self.state.set_zero_data_retention(org_id, zdr)
        if "skill_delete" in body:
            self.state.set_skill_delete(org_id, delete)
        return json_response(self.state.organization_json(org_id))


class _FaultsAndStats:
    """ASGI middleware: request ids, call statistics and fault injection on `/v1` routes."""

    def __init__(
        self,
        app: ASGIApp,
        routes: list[BaseRoute],
        faults: Faults,
        stats: CallStats,
        org_of: Callable[[Headers], str | None] | None = None,
    ) -> None:
        self.app = app
        self.routes = routes
        self.faults = faults
        self.stats = stats
        self.org_of = org_of

    def template(self, scope: Scope) -> str:
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is not Match.NONE:
                return getattr(route, "path", "?")
        return "unmatched"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = "req_" + os.urandom(12).hex()
        scope[RID] = request_id
        method = scope["method"]
        api = scope["path"].startswith("/v1/")
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", []), (b"request-id", request_id.encode())]
                message = {**message, "headers": headers}
            await send(message)

        if not api:
            await self.app(scope, receive, send_with_id)
            return
        route = self.template(scope)
        answer: Send = send_with_id
        org = self.org_of(Headers(scope=scope)) if self.org_of is not None else None
        if org is not None:
            self.stats.enter(org)
        try:
            if self.faults.applies(method, route):
                delay = self.faults.latency()
                if delay:
                    await asyncio.sleep(delay)
                fault = self.faults.pick(request_key(Headers(scope=scope)), f"{method} {route}")
                if fault is not None and fault.code is not None:
                    scope[FAULT_CODE] = fault.code  # the handler produces it
                    headers = self.faults.config.code_headers.get(fault.code)
                    if headers:
                        answer = _error_headers(send_with_id, headers)
                    fault = None
                if fault is not None and fault.mode is not None:
                    await self.corrupt(fault.mode, scope, route, receive, send_with_id)
                    return
                if fault is not None and fault.kind == "lost":
                    await self.app(scope, receive, _discard)  # its effects happen
                    fault = Fault("status", 504)
                if fault is not None:
                    await self.inject(fault, request_id, receive, send_with_id)
                    return
            await self.app(scope, receive, answer)
        except ClientDisconnect:
            status = 0  # hung up before its body arrived (a killed daemon): nothing was answered
        finally:
            self.stats.add(method, route, status)
            if org is not None:
                self.stats.leave(org, wrote=method != "GET" and 200 <= status < 300)

    async def corrupt(
        self, mode: CorruptMode, scope: Scope, route: str, receive: Receive, send: Send
    ) -> None:
        """Run the real handler (its effects happen), then answer a corrupt form of its 2xx."""
        self.faults.corrupted[(mode, route)] += 1
        query = dict(parse_qsl(scope["query_string"].decode("latin-1")))
        try:
            limit = int(query.get("limit", "20"))
        except ValueError:
            limit = 20
        factor = fetch_factor(mode, scope["method"], route)
        if factor > 1:
            query["limit"] = str(limit * factor)
            scope = {**scope, "query_string": urlencode(query).encode(), LIMIT_UNCAPPED: True}
        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        status, body = start["status"], b"".join(chunks)
        headers = [(k, v) for k, v in start.get("headers", []) if k != b"content-length"]
        if 200 <= status < 300:
            body, content_type = corrupt_answer(
                mode, route, body, limit, self.faults.config.huge_body_bytes
            )
            if content_type is not None:
                headers = [(k, v) for k, v in headers if k != b"content-type"]
                headers.append((b"content-type", content_type))
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def inject(self, fault: Fault, request_id: str, receive: Receive, send: Send) -> None:
        if fault.kind == "reset":
            transport = CURRENT_TRANSPORT.get()
            if transport is not None:
                _reset(transport)
                await _wait_disconnect(receive, 5.0)
                return
            # Not under our server: drop the connection mid-answer instead.
            await send({"type": "http.response.start", "status": 200, "headers": []})
            raise ConnectionResetError("emulated connection reset")
        if fault.kind == "timeout":
            if await _wait_disconnect(receive, self.faults.config.timeout_s):
                return
            fault = Fault("status", 504)
        status = fault.status
        error_type = _ERROR_TYPES.get(status, "api_error")
        message = {
            429: "rate limited (emulated): retry later",
            529: "overloaded (emulated)",
            504: "gateway timeout (emulated)",
        }.get(status, f"internal error (emulated {status})")
        headers = [(b"content-type", b"application/json")]
        if fault.retry_after is not None:
            headers.append((b"retry-after", str(fault.retry_after).encode()))
        if fault.retry_after_ms is not None:
            headers.append((b"retry-after-ms", str(fault.retry_after_ms).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send(
            {
                "type": "http.response.body",
                "body": error_body(status, error_type, message, request_id),
            }
        )


async def _discard(message: Message) -> None:
    """Where a `lost` answer goes."""


def _error_headers(send: Send, extra: dict[str, str]) -> Send:
    """`send`, with an error answer's headers named in `extra` replaced by its values."""
    names = {k.lower().encode() for k in extra}
    added = [(k.lower().encode(), v.encode()) for k, v in extra.items()]

    async def with_headers(message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] >= 400:
            kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
            message = {**message, "headers": kept + added}
        await send(message)

    return with_headers


def _reset(transport: asyncio.Transport) -> None:
    """Close with a TCP RST (SO_LINGER 0), as a crashed peer or a middlebox would."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def _wait_disconnect(receive: Receive, timeout: float) -> bool:
    """True once the client has gone; False if it is still there after `timeout` seconds."""

    async def until_gone() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    try:
        await asyncio.wait_for(until_gone(), timeout)
    except TimeoutError:
        return False
    return True


def build_app(
    state: EmulatorState, faults: Faults | None = None, stats: CallStats | None = None
) -> EmulatorApp:
    return EmulatorApp(state, faults or Faults(), stats or CallStats())


__all__ = ["CURRENT_TRANSPORT", "EmulatorApp", "build_app"]
