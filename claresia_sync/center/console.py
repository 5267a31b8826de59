"""The console: HTML pages over the same operations as the API (no second copy).

Login turns a token into a session cookie (`auth.Tokens.new_session`); every form carries the
session's CSRF token and every POST checks it (the login form too, with a pre-login cookie).
A viewer's pages have no buttons, and its POSTs are refused (and recorded) all the same.
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from claresia_sync.center import actions, operations, skill_view
from claresia_sync.center import rollouts as rollout_ops
from claresia_sync.center.api import SESSION_COOKIE, SINCE, SLUG, unavailable
from claresia_sync.center.auth import SESSION_SECONDS, Identity
from claresia_sync.center.context import Center, Forbidden
from claresia_sync.center.operations import Conflict, NotFound
from claresia_sync.db.engine import is_unavailable
from claresia_sync.errors import UserError
from claresia_sync.telemetry.report import SOURCES, parse_since
from claresia_sync.telemetry.sources import (
    ACTIVITY_FEED,
    AUDIT_POLLER,
    CLAUDE_CODE_OTLP,
    SKILLS_ANALYTICS,
)

LOGIN_CSRF_COOKIE = "claresia_center_login"
_env = Environment(
    loader=PackageLoader("claresia_sync.center", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
# The header's links, in order: a new page adds its line here.
NAV = [
    ("/", "Tenants"),
    ("/jobs", "Jobs"),
    ("/drift", "Drift & quarantine"),
    ("/telemetry", "Telemetry"),
    ("/kill-switch", "Kill switch"),
    ("/rollouts", "Releases & rollouts"),
    ("/actions", "Actions"),
]
_env.globals["nav"] = NAV


# The charts of each source per UTC day (metric of /telemetry/by-source/daily, caption, the
# source it belongs to: None for the totals of the per-event sources).
SOURCE_CHARTS = [
    ("audit_runs", "Audit log: runs per day", AUDIT_POLLER),
    ("claude_code_activations", "Claude Code: activations per day", CLAUDE_CODE_OTLP),
    ("apps_invocations", "Skills analytics: uses in the Claude apps per day", SKILLS_ANALYTICS),
    ("lifecycle_events", "Activity feed: lifecycle events per day", ACTIVITY_FEED),
    ("failure_rate", "Failure rate per day (audit log and Claude Code)", None),
    ("cost_usd", "Cost per day (USD, audit log and Claude Code)", None),
]


def chart_url(**query: str | None) -> str:
    """The API route of the per-day charts, with the filters that are set."""
    return "/api/v1/telemetry/by-source/daily?" + urlencode({k: v for k, v in query.items() if v})


class _Page:
    """The logged-in caller of a page: identity and CSRF token."""

    def __init__(self, who: Identity, csrf: str) -> None:
        self.who, self.csrf = who, csrf


def _render(name: str, code: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(_env.get_template(name).render(**context), status_code=code)


def _session(center: Center, request: Request) -> _Page | None:
    cookie = request.cookies.get(SESSION_COOKIE)
    found = center.tokens.session(cookie) if cookie else None
    return None if found is None else _Page(*found)


def _login_redirect() -> Response:
    return RedirectResponse("/login", status_code=303)


PageFn = Callable[[Request, _Page], Awaitable[Response]]


async def _answer(fn: PageFn, request: Request, page: _Page) -> Response:
    """The page, or the error page with the status the API would answer."""
    try:
        return await fn(request, page)
    except (Forbidden, NotFound, Conflict, UserError) as exc:
        code = {Forbidden: 403, NotFound: 404, Conflict: 409}.get(type(exc), 422)
        return _render("error.html", code, page=page, message=str(exc))
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        return _render("error.html", 503, page=page, message=unavailable(exc).message)


def _page(center: Center, fn: PageFn) -> Callable[[Request], Awaitable[Response]]:
    """A GET page: logged in, else to the login page."""

    async def handle(request: Request) -> Response:
        page = _session(center, request)
        if page is None:
            return _login_redirect()
        return await _answer(fn, request, page)

    return handle


def _form(center: Center, fn: PageFn) -> Callable[[Request], Awaitable[Response]]:
    """A POST form: logged in and the session's CSRF token, else refused."""

    async def handle(request: Request) -> Response:
        page = _session(center, request)
        if page is None:
            return _render("error.html", 401, page=None, message="log in first")
        form = await request.form()
        sent = str(form.get("csrf", ""))
        if not hmac.compare_digest(sent.encode(), page.csrf.encode()):
            return _render(
                "error.html", 403, page=page, message="refused: the form's CSRF token is wrong"
            )
        return await _answer(fn, request, page)

    return handle


def _valid(value: str, what: str) -> str:
    if not re.match(SLUG, value) or len(value) > 64:
        raise NotFound(f"{value[:64]!r} is not a {what}")
    return value


def _slug(request: Request) -> str:
    return _valid(str(request.path_params["slug"]), "tenant slug")


def _since(value: str | None) -> str:
    since = value or "30d"
    if not re.match(SINCE, since):
        raise UserError(f"since {since[:20]!r}: give a span like 30d, 2w or a date like 2026-11-01")
    return since


def _optional(value: object, what: str) -> str | None:
    return _valid(str(value), what) if value else None


def console_routes(center: Center) -> list[Route]:
    engine = center.engine
    api_timeout = center.settings.api_timeout_s

    # --- login ----------------------------------------------------------------------------------

    async def login_page(request: Request) -> Response:
        nonce = secrets.token_hex(16)
        response = _render("login.html", csrf=nonce, error=None, page=None)
        response.set_cookie(LOGIN_CSRF_COOKIE, nonce, max_age=600, httponly=True, samesite="strict")
        return response

    async def login(request: Request) -> Response:
        form = await request.form()
        expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not expected or not hmac.compare_digest(
            str(form.get("csrf", "")).encode(), expected.encode()
        ):
            return _render("error.html", 403, page=None, message="refused: CSRF token missing")
        who = center.tokens.authenticate(str(form.get("token", "")).strip())
        if who is None:
            nonce = secrets.token_hex(16)
            response = _render(
                "login.html", 401, csrf=nonce, error="that token is not valid", page=None
            )
            response.set_cookie(
                LOGIN_CSRF_COOKIE, nonce, max_age=600, httponly=True, samesite="strict"
            )
            return response
        done = RedirectResponse("/", status_code=303)
        done.set_cookie(
            SESSION_COOKIE,
            center.tokens.new_session(who),
            max_age=SESSION_SECONDS,
            httponly=True,
            samesite="strict",
        )
        done.delete_cookie(LOGIN_CSRF_COOKIE)
        return done

    async def logout(request: Request, page: _Page) -> Response:
        response = _login_redirect()
        response.delete_cookie(SESSION_COOKIE)
        return response

    # --- pages ----------------------------------------------------------------------------------

    async def home(request: Request, page: _Page) -> Response:
        status = await center.read(operations.tenants, engine)
        orgs = await center.read(operations.organisations, engine)
        recent = await center.read(
            operations.list_jobs, engine, status=None, tenant_slug=None, limit=5
        )
        return _render("tenants.html", page=page, status=status, orgs=orgs, jobs=recent)

    async def tenant_page(request: Request, page: _Page) -> Response:
        slug = _slug(request)
        found = await center.read(operations.tenant, engine, slug)
        pubs = await center.read(operations.publications, engine, tenant=slug)
        access = await center.read(operations.tenant_access, engine, slug)
        return _render("tenant.html", page=page, tenant=found, publications=pubs, access=access)

    async def plan_page(request: Request, page: _Page) -> Response:
        slug = _slug(request) if "slug" in request.path_params else None
        force = request.query_params.get("force", "1" if slug is None else "0") == "1"
        plan = await operations.plan(engine, slug, force=force, api_timeout=api_timeout)
        return _render("plan.html", page=page, plan=plan, tenant=slug, force=force)

    async def publish(request: Request, page: _Page) -> Response:
        form = await request.form()
        slug = _optional(form.get("tenant"), "tenant slug")
        force = form.get("force") == "1"
        action = actions.Action("publish", slug, {"force": force, "via": "console"})

        async def work() -> dict[str, Any]:
            return await center.read(
                operations.publish,
                engine,
                slug,
                force=force,
                requested_by=f"center:{page.who.name}",
            )

        job = await center.act(page.who, action, work)
        return RedirectResponse(f"/jobs/{job['id']}", status_code=303)

    async def jobs_page(request: Request, page: _Page) -> Response:
        found = await center.read(
            operations.list_jobs, engine, status=None, tenant_slug=None, limit=50
        )
        return _render("jobs.html", page=page, jobs=found)

    def _job_id(request: Request) -> int:
        value = str(request.path_params["job_id"])
        if not value.isdigit() or not 1 <= int(value) < 2**63:
            raise NotFound(f"no publish job {value!r}")
        return int(value)

    async def job_page(request: Request, page: _Page) -> Response:
        job = await center.read(operations.job, engine, _job_id(request))
        return _render("job.html", page=page, job=job)

    def job_verb(name: str, fn: Callable[[Any, int], dict[str, Any]]) -> PageFn:
        async def verb(request: Request, page: _Page) -> Response:
            job_id = _job_id(request)
            action = actions.Action(f"job.{name}", str(job_id), {"via": "console"})

            async def work() -> dict[str, Any]:
                return await center.read(fn, engine, job_id)

            job = await center.act(page.who, action, work)
            return RedirectResponse(f"/jobs/{job['id']}", status_code=303)

        return verb

    async def drift_page(request: Request, page: _Page) -> Response:
        plan = await operations.plan(engine, None, force=True, api_timeout=api_timeout)
        quarantine = await center.read(operations.quarantine, engine, org_id=None, limit=100)
        return _render("drift.html", page=page, plan=plan, quarantine=quarantine)

    async def replay(request: Request, page: _Page) -> Response:
        form = await request.form()
        dry_run = form.get("dry_run") == "1"
        action = actions.Action("quarantine.replay", None, {"dry_run": dry_run, "via": "console"})

        async def work() -> dict[str, Any]:
            results = await center.read(
                operations.replay, engine, center.settings, None, dry_run=dry_run
            )
            return {"results": results}

        done = await center.act(page.who, action, work)
        quarantine = await center.read(operations.quarantine, engine, org_id=None, limit=100)
        return _render("drift.html", page=page, plan=None, quarantine=quarantine, replay=done)

    async def telemetry_page(request: Request, page: _Page) -> Response:
        params = request.query_params
        tenant = _optional(params.get("tenant"), "tenant slug")
        skill = _optional(params.get("skill"), "skill id")
        source = params.get("source") or None
        if source is not None and source not in SOURCES:
            raise NotFound(f"{source[:64]!r} is not a source (one of {', '.join(SOURCES)})")
        since = _since(params.get("since"))
        start = parse_since(since)
        by_source = await center.read(
            operations.telemetry_by_source,
            engine,
            since=start.astimezone(dt.UTC).date(),
            tenant_slug=tenant,
            skill=skill,
            source=source,
        )
        figures = await center.read(
            operations.telemetry_summary, engine, since=start, tenant_slug=tenant
        )
        status = await center.read(operations.tenants, engine)
        return _render(
            "telemetry.html",
            page=page,
            by_source=by_source,
            figures=[f for f in figures if not skill or f["skill_id"] == skill],
            tenants=[t["slug"] for t in status["tenants"]],
            skills=await center.read(operations.skill_ids, engine),
            sources=list(SOURCES),
            tenant=tenant,
            skill=skill,
            source=source,
            since=since,
            charts=[c for c in SOURCE_CHARTS if source is None or c[2] in (None, source)],
            chart_url=chart_url(since=since, tenant=tenant, skill=skill),
        )

    async def skill_page(request: Request, page: _Page) -> Response:
        skill_id = _valid(str(request.path_params["skill_id"]), "skill id")
        tenant = _optional(request.query_params.get("tenant"), "tenant slug")
        since = _since(request.query_params.get("since"))
        found = await center.read(
            skill_view.skill,
            engine,
            skill_id,
            tenant=tenant,
            since=parse_since(since).astimezone(dt.UTC).date(),
        )
        return _render(
            "skill.html",
            page=page,
            skill=found,
            filtered=tenant,
            since=since,
            charts=SOURCE_CHARTS,
            chart_url=chart_url(since=since, tenant=tenant, skill=skill_id),
        )

    async def kill_switch_page(request: Request, page: _Page) -> Response:
        disabled = await center.read(operations.disabled_skills, engine)
        skills = await center.read(operations.catalog_skill_ids, engine)
        status = await center.read(operations.tenants, engine)
        tenants = [t["slug"] for t in status["tenants"]]
        return _render(
            "kill_switch.html", page=page, disabled=disabled, skills=skills, tenants=tenants
        )

    async def switch_off(request: Request, page: _Page) -> Response:
        form = await request.form()
        skill = _valid(str(form.get("skill", "")), "skill id")
        tenant = _optional(form.get("tenant"), "tenant slug")
        reason = str(form.get("reason", "")).strip()
        action = actions.Action(
            "skill.disable", skill, {"tenant": tenant, "reason": reason, "via": "console"}
        )

        async def work() -> dict[str, Any]:
            return await center.read(
                operations.disable_skill,
                engine,
                skill,
                tenant,
                reason=reason,
                by=f"center:{page.who.name}",
            )

        await center.act(page.who, action, work)
        return RedirectResponse("/kill-switch", status_code=303)

    async def switch_on(request: Request, page: _Page) -> Response:
        form = await request.form()
        skill = _valid(str(form.get("skill", "")), "skill id")
        tenant = _optional(form.get("tenant"), "tenant slug")
        action = actions.Action("skill.enable", skill, {"tenant": tenant, "via": "console"})

        async def work() -> dict[str, Any]:
            return await center.read(
                operations.enable_skill, engine, skill, tenant, by=f"center:{page.who.name}"
            )

        await center.act(page.who, action, work)
        return RedirectResponse("/kill-switch", status_code=303)

    def _rollout_id(request: Request) -> int:
        value = str(request.path_params["rollout_id"])
        if not value.isdigit() or not 1 <= int(value) < 2**63:
            raise NotFound(f"no rollout {value[:64]!r}")
        return int(value)

    async def rollouts_page(request: Request, page: _Page) -> Response:
        found = await center.read(rollout_ops.rollouts, engine)
        shown = None
        if "rollout_id" in request.path_params:
            shown = await center.read(rollout_ops.rollout, engine, _rollout_id(request))
        elif found:
            shown = await center.read(rollout_ops.rollout, engine, found[0]["id"])
        return _render(
            "rollouts.html",
            page=page,
            releases=await center.read(rollout_ops.releases, engine),
            rollouts=found,
            rollout=shown,
        )

    def rollout_verb(name: str) -> PageFn:
        async def verb(request: Request, page: _Page) -> Response:
            rollout_id = _rollout_id(request)
            form = await request.form()
            reason = str(form.get("reason") or "")[:1000] or None
            fn = {
                "promote": rollout_ops.promote,
                "rollback": rollout_ops.rollback,
                "halt": rollout_ops.halter(reason),
            }[name]
            action = actions.Action(
                f"rollout.{name}", str(rollout_id), {"reason": reason, "via": "console"}
            )

            async def work() -> dict[str, Any]:
                return await center.read(
                    rollout_ops.act, engine, rollout_id, fn, f"center:{page.who.name}"
                )

            await center.act(page.who, action, work)
            return RedirectResponse(f"/rollouts/{rollout_id}", status_code=303)

        return verb

    async def actions_page(request: Request, page: _Page) -> Response:
        found = await center.read(actions.recent, engine, 100)
        return _render("actions.html", page=page, actions=found)

    return [
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", _form(center, logout), methods=["POST"]),
        Route("/", _page(center, home), methods=["GET"]),
        Route("/tenants/{slug}", _page(center, tenant_page), methods=["GET"]),
        Route("/tenants/{slug}/plan", _page(center, plan_page), methods=["GET"]),
        Route("/republish", _page(center, plan_page), methods=["GET"]),
        Route("/publish", _form(center, publish), methods=["POST"]),
        Route("/jobs", _page(center, jobs_page), methods=["GET"]),
        Route("/jobs/{job_id}", _page(center, job_page), methods=["GET"]),
        Route(
            "/jobs/{job_id}/retry",
            _form(center, job_verb("retry", operations.retry)),
            methods=["POST"],
        ),
        Route(
            "/jobs/{job_id}/cancel",
            _form(center, job_verb("cancel", operations.cancel)),
            methods=["POST"],
        ),
        Route("/drift", _page(center, drift_page), methods=["GET"]),
        Route("/quarantine/replay", _form(center, replay), methods=["POST"]),
        Route("/telemetry", _page(center, telemetry_page), methods=["GET"]),
        Route("/skills/{skill_id}", _page(center, skill_page), methods=["GET"]),
        Route("/kill-switch", _page(center, kill_switch_page), methods=["GET"]),
        Route("/kill-switch", _form(center, switch_off), methods=["POST"]),
        Route("/kill-switch/enable", _form(center, switch_on), methods=["POST"]),
        Route("/rollouts", _page(center, rollouts_page), methods=["GET"]),
        Route("/rollouts/{rollout_id}", _page(center, rollouts_page), methods=["GET"]),
        *(
            Route(
                f"/rollouts/{{rollout_id}}/{verb}",
                _form(center, rollout_verb(verb)),
                methods=["POST"],
            )
            for verb in ("promote", "halt", "rollback")
        ),
        Route("/actions", _page(center, actions_page), methods=["GET"]),
    ]
