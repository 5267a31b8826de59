"""Command Center security: no token, a wrong token and a viewer token on every operator route;
the console's CSRF check; the canary admin key (and the tokens) never in a page or an answer."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable

import httpx2
from sqlalchemy import Engine, text

from claresia_sync.center.api import ENDPOINTS
from claresia_sync.emulator import EmulatorServer
from claresia_sync.operator_tokens import Role
from tests.fixtures.center import VIEWER, CenterProcess
from tests.fixtures.daemon import wait_until
from tests.fixtures.emulator import DAINESE_ORG

OPERATOR_ROUTES = [e for e in ENDPOINTS if e.role == Role.OPERATOR]


def _path(template: str) -> str:
    return (
        template.replace("{job_id}", "1")
        .replace("{slug}", "dainese")
        .replace("{skill_id}", "prd-review")
        .replace("{rollout_id}", "1")
    )


def login(c: CenterProcess, token: str) -> tuple[httpx2.Client, str]:
    """A console session (cookie jar) and its CSRF token, logged in through the login form."""
    client = httpx2.Client(base_url=c.url, timeout=30)
    page = client.get("/login").text
    nonce = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert nonce is not None
    answer = client.post("/login", data={"csrf": nonce.group(1), "token": token})
    assert answer.status_code == 303, answer.text
    home = client.get("/").text
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', home)
    assert csrf is not None
    return client, csrf.group(1)


def test_every_operator_route_refuses_no_token_a_wrong_token_and_a_viewer(
    center: Callable[..., CenterProcess], engine: Engine
) -> None:
    c = center()
    assert len(OPERATOR_ROUTES) >= 4
    wrong = secrets.token_urlsafe(24)
    for e in ENDPOINTS:
        path = _path(e.path)
        for headers in ({}, {"Authorization": f"Bearer {wrong}"}, {"Authorization": "Basic x"}):
            answer = httpx2.request(e.method, c.url + "/api/v1" + path, headers=headers, json={})
            assert answer.status_code == 401, (e.path, headers, answer.text)
            assert answer.json()["error"]["code"] == "unauthenticated"
            assert answer.headers["www-authenticate"] == "Bearer"
        viewer = c.api(e.method, path, c.viewer_token, json={} if e.body else None)
        if e.role == Role.OPERATOR:
            assert viewer.status_code == 403, (e.path, viewer.text)
            assert viewer.json()["error"]["code"] == "forbidden"
        else:
            assert viewer.status_code in (200, 404), (e.path, viewer.text)
    with engine.connect() as conn:
        refused = conn.execute(
            text(
                "SELECT action FROM center_action WHERE actor = :v AND role = 'viewer' "
                "AND outcome = 'refused'"
            ),
            {"v": VIEWER},
        ).scalars()
        assert sorted(refused) == sorted(
            ("publish" if "publish" in e.path else _verb(e.path)) for e in OPERATOR_ROUTES
        )
        assert conn.execute(text("SELECT count(*) FROM publish_job")).scalar_one() == 0


def _verb(path: str) -> str:
    if "replay" in path:
        return "quarantine.replay"
    if path == "/rollouts":
        return "rollout.start"
    kind = {"/rollouts/": "rollout.", "/skills/": "skill."}.get(
        path[: path.find("/", 1) + 1], "job."
    )
    return kind + path.rsplit("/", 1)[-1]


def test_console_forms_need_the_csrf_token_and_a_viewer_sees_no_buttons(
    center: Callable[..., CenterProcess], engine: Engine
) -> None:
    c = center()
    operator, csrf = login(c, c.operator_token)
    # a form without the token, or with another session's, is refused and changes nothing
    for data in ({}, {"csrf": "0" * 64}, {"csrf": csrf + "0"}):
        answer = operator.post("/publish", data={**data, "tenant": "dainese"})
        assert answer.status_code == 403 and "CSRF" in answer.text
    # the API with the session cookie but no CSRF header: refused too
    answer = operator.post("/api/v1/publish", json={"tenant": "dainese"})
    assert answer.status_code == 403 and answer.json()["error"]["field"] == "x-csrf-token"
    # a login form without its CSRF cookie
    fresh = httpx2.post(c.url + "/login", data={"csrf": "x", "token": c.operator_token})
    assert fresh.status_code == 403
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM publish_job")).scalar_one() == 0
    # with it, the form works
    done = operator.post("/publish", data={"csrf": csrf, "tenant": "dainese", "force": "0"})
    assert done.status_code == 303 and done.headers["location"].startswith("/jobs/")

    viewer, viewer_csrf = login(c, c.viewer_token)
    for page in ("/", "/tenants/dainese", "/tenants/dainese/plan", "/republish", "/jobs",
                 done.headers["location"], "/drift"):  # fmt: skip
        answer = viewer.get(page)
        assert answer.status_code == 200, page
        html = answer.text
        assert "<button" not in html.replace('<button type="submit" class="link">Log out', ""), page
        assert 'action="/publish"' not in html
    refused = viewer.post("/publish", data={"csrf": viewer_csrf, "tenant": "dainese"})
    assert refused.status_code == 403 and "viewer" in refused.text


def test_the_canary_admin_key_and_the_tokens_never_appear(
    center: Callable[..., CenterProcess], emulator: EmulatorServer, engine: Engine
) -> None:
    canary = f"sk-ant-admin01-dainese-CANARY-{secrets.token_hex(24)}"
    secret = canary[len("sk-ant-") : -4]  # masking may keep the kind and the last 4 chars
    emulator.state.add_admin_key(DAINESE_ORG, canary)
    c = center(env={"CLARESIA_DAINESE_ADMIN_KEY": canary})
    job = c.api("POST", "/publish", c.operator_token, json={"tenant": "dainese"}).json()
    wait_until(
        lambda: c.api("GET", f"/jobs/{job['id']}", c.viewer_token).json()["status"] == "succeeded",
        60,
        "a publish with the canary key",
    )
    emulator.state.generate_invocations(DAINESE_ORG, 20, failure_rate=0.5, seed=3)
    with emulator.state.lock:  # revoked: errors that mention the key's use
        del emulator.state.keys[canary]
    failed = c.api("POST", "/publish", c.operator_token, json={"force": True}).json()
    wait_until(
        lambda: (
            c.api("GET", f"/jobs/{failed['id']}", c.viewer_token).json()["status"]
            in ("partial", "failed")
        ),
        60,
        "a publish with the revoked key",
    )
    bodies: dict[str, str] = {}
    for e in ENDPOINTS:
        if e.method == "GET":
            path = _path(e.path).replace("/jobs/1", f"/jobs/{failed['id']}")
            bodies[path] = c.api("GET", path, c.operator_token).text
    bodies["openapi"] = httpx2.get(c.url + "/api/v1/openapi.json").text
    console, _ = login(c, c.operator_token)
    pages = ["/", "/tenants/dainese", "/tenants/dainese/plan", "/republish", "/jobs"]
    pages += [f"/jobs/{failed['id']}", "/drift", "/telemetry", "/actions", "/login"]
    for page in pages:
        answer = console.get(page)
        assert answer.status_code == 200, page
        bodies[page] = answer.text + str(answer.headers)
    assert "401" in bodies[f"/jobs/{failed['id']}"]  # the failure is shown, the key is not
    for where, body in bodies.items():
        assert secret not in body, f"the admin key leaked into {where}"
        assert c.operator_token not in body and c.viewer_token not in body, where
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT string_agg(params::text || coalesce(detail, ''), '') "
                                   "FROM center_action")).scalar_one()  # fmt: skip
    assert stored and c.operator_token not in stored and secret not in stored
