"""The Command Center's operator API on a real daemon: reads, a publish it returns and the daemon
runs, the job verbs, quarantine and telemetry, the error envelope naming the field, the
append-only action log, and the OpenAPI document describing every route."""

from __future__ import annotations

import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest
import uvicorn
from sqlalchemy import Engine, text

from claresia_sync.center.api import ENDPOINTS
from claresia_sync.center.app import center_app, make_center
from claresia_sync.config import Settings
from claresia_sync.db.engine import make_engine
from claresia_sync.emulator import EmulatorServer
from tests.fixtures.center import OPERATOR, CenterProcess, center_env
from tests.fixtures.daemon import ROOT, daemon_environment, free_port, wait_until
from tests.fixtures.emulator import DAINESE_ORG

FINISHED = ("succeeded", "partial", "failed", "cancelled")


def _wait_job(c: CenterProcess, job_id: int) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def done() -> bool:
        found.update(c.api("GET", f"/jobs/{job_id}", c.viewer_token).json())
        return found["status"] in FINISHED

    wait_until(done, 60, f"job {job_id} to finish")
    return found


def test_api_reads_publishes_and_records(
    center: Callable[..., CenterProcess], engine: Engine, emulator: EmulatorServer
) -> None:
    c = center()
    op, viewer = c.operator_token, c.viewer_token
    assert c.api("GET", "/whoami", op).json()["role"] == "operator"
    assert c.api("GET", "/whoami", viewer).json() == {
        "name": "viewer-bob",
        "role": "viewer",
        "version": "0.1.0",
    }
    tenants = c.api("GET", "/tenants", viewer).json()
    assert {"dainese", "dainese-eng", "acme"} <= {t["slug"] for t in tenants["tenants"]}

    # the plan of one tenant: a dry run that writes nothing
    emulator.stats.reset()
    plan = c.api("GET", "/plan", viewer, params={"tenant": "dainese"}).json()
    assert plan["counts"]["create"] > 0 and plan["writes"] == plan["counts"]["create"]
    items = [i for o in plan["organisations"] for i in o["items"]]
    assert {i["org_id"] for i in items} == {DAINESE_ORG}
    assert all(i["desired_access"] is not None for i in items if i["op"] == "create")
    assert emulator.stats.writes() == 0

    # publish returns the job; the daemon runs it; the job shows per-skill results
    answer = c.api("POST", "/publish", op, json={"tenant": "dainese"})
    assert answer.status_code == 202, answer.text
    job = answer.json()
    assert job["status"] in ("queued", "running") and job["tenant"] == "dainese"
    assert job["requested_by"] == f"center:{OPERATOR}"
    done = _wait_job(c, job["id"])
    assert done["status"] == "succeeded", done
    assert len(done["results"]) == plan["counts"]["create"]
    assert {r["status"] for r in done["results"]} == {"published"}
    # A finished job's stats hold its counts; the live (done, total) is only there while it runs.
    assert done["progress"] == {
        "recorded": len(done["results"]),
        "done": None,
        "total": None,
        "finished": True,
        "of": "skill(s)",
    }
    assert job["id"] in [j["id"] for j in c.api("GET", "/jobs", viewer).json()]
    detail = c.api("GET", "/tenants/dainese", viewer).json()
    assert detail["live"] == len([r for r in done["results"] if r["tenant"] == "dainese"])

    # verbs that do not apply are a 409 in the envelope; unknown ids a 404
    retry = c.api("POST", f"/jobs/{job['id']}/retry", op)
    assert retry.status_code == 409 and "succeeded" in retry.json()["error"]["message"]
    assert c.api("POST", "/jobs/999999/cancel", op).status_code == 404
    assert c.api("GET", "/tenants/nope", viewer).json()["error"]["code"] == "not_found"
    # a queued job cancelled before any daemon takes it (republish all, force)
    forced = c.api("POST", "/publish", op, json={"force": True}).json()
    cancelled = c.api("POST", f"/jobs/{forced['id']}/cancel", op)
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] in ("cancelled", "running")
    # (the daemon may have taken it first: a running job stops at its next skill, or ends)
    ended = _wait_job(c, forced["id"])["status"]
    again = c.api("POST", f"/jobs/{forced['id']}/retry", op)
    if ended == "succeeded":
        assert again.status_code == 409
    else:
        assert ended == "cancelled"
        assert again.status_code == 202 and again.json()["retry_of"] == forced["id"]

    # quarantine and telemetry
    emulator.state.generate_invocations(DAINESE_ORG, 40, failure_rate=0.25, seed=7)
    wait_until(
        lambda: (
            sum(d["invocations"] for d in c.api("GET", "/telemetry/daily", viewer).json()) == 40
        ),
        30,
        "invocations ingested",
    )
    summary = c.api("GET", "/telemetry/summary", viewer, params={"since": "1d"}).json()
    assert sum(f["invocations"] for f in summary) == 40
    daily = c.api("GET", "/telemetry/daily", viewer, params={"tenant": "dainese"}).json()
    failures = sum(f["failures"] for f in summary)
    assert 0 < failures < 40 and failures == sum(d["failures"] for d in daily)
    quarantine = c.api("GET", "/quarantine", viewer).json()
    assert set(quarantine) == {"entries", "by_reason"}
    replay = c.api("POST", "/quarantine/replay", op, json={"dry_run": True})
    assert replay.status_code == 200 and "results" in replay.json()

    # every action recorded: who, when, what, how it ended
    log = c.api("GET", "/actions", viewer).json()
    mine = [(a["actor"], a["action"], a["target"], a["outcome"]) for a in log]
    assert (OPERATOR, "publish", "dainese", "ok") in mine
    assert (OPERATOR, "job.retry", str(job["id"]), "refused") in mine
    assert (OPERATOR, "quarantine.replay", None, "ok") in mine
    published = next(a for a in log if a["action"] == "publish" and a["target"] == "dainese")
    assert published["job_id"] == job["id"] and published["at"]


@pytest.mark.parametrize(
    ("method", "path", "kw", "field"),
    [
        ("GET", "/jobs", {"params": {"limit": "0"}}, "limit"),
        ("GET", "/jobs", {"params": {"status": "done"}}, "status"),
        ("GET", "/jobs", {"params": {"colour": "red"}}, "colour"),
        ("GET", "/plan", {"params": {"tenant": "Not A Slug"}}, "tenant"),
        ("GET", "/telemetry/summary", {"params": {"since": "yesterday"}}, "since"),
        ("GET", "/telemetry/daily", {"params": {"days": "x"}}, "days"),
        ("GET", "/jobs/0", {}, "job_id"),
        ("POST", "/publish", {"json": {"force": "maybe"}}, "force"),
        ("POST", "/publish", {"json": {"tenant": "dainese", "extra": 1}}, "extra"),
        ("POST", "/publish", {"content": b"{not json"}, "body"),
        ("POST", "/publish", {"json": [1, 2]}, "body"),
    ],
)
def test_bad_input_gets_the_envelope_naming_the_field(
    center_module: CenterProcess, method: str, path: str, kw: dict[str, Any], field: str
) -> None:
    answer = center_module.api(method, path, center_module.operator_token, **kw)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["field"] == field and field in error["message"]
    assert error["code"] == "invalid_input" and error["status"] == 422


def test_the_action_log_is_append_only(center_module: CenterProcess) -> None:
    center_module.api("POST", "/jobs/424242/cancel", center_module.operator_token)
    assert center_module.engine is not None
    with center_module.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM center_action")).scalar_one() > 0
        for statement in (
            "UPDATE center_action SET actor = 'someone else'",
            "DELETE FROM center_action",
        ):
            nested = conn.begin_nested()
            with pytest.raises(Exception, match="append-only"):
                conn.execute(text(statement))
            nested.rollback()


def test_the_openapi_document_describes_every_route(center_module: CenterProcess) -> None:
    answer = center_module.client(None).get("/api/v1/openapi.json")
    doc = answer.json()
    assert doc["openapi"].startswith("3.")
    served = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert served == {(e.method, "/api/v1" + e.path) for e in ENDPOINTS}
    jobs = doc["paths"]["/api/v1/jobs"]["get"]["parameters"]
    limit = next(p for p in jobs if p["name"] == "limit")
    assert limit["schema"]["minimum"] == 1 and limit["schema"]["maximum"] == 500
    started = time.monotonic()
    assert center_module.api("GET", "/tenants", center_module.viewer_token).status_code == 200
    assert time.monotonic() - started < 5


def test_sigterm_stops_the_daemon_and_its_command_center_in_time(
    center: Callable[..., CenterProcess],
) -> None:
    c = center()
    with c.client(c.viewer_token) as client:  # a keep-alive connection left open
        assert client.get("/api/v1/tenants").status_code == 200
        code, seconds = c.daemon.stop(timeout=15)
    assert code == 0 and seconds < 10, seconds
    lines = c.daemon.logs()
    assert any(str(e["event"]).startswith("Command Center on http://127.0.0.1:") for e in lines)
    errors = [e for e in lines if e["level"] == "error" and "center" in str(e.get("logger"))]
    assert not errors + [e for e in lines if str(e.get("logger")).startswith("uvicorn")]


def test_center_command_serves_alone_and_refuses_bad_settings(
    database_url: str, tmp_path: Path
) -> None:
    env = daemon_environment(database_url, tmp_path)
    env.pop("CLARESIA_CENTER_TOKENS", None)
    for extra, expected in (
        ({}, "no Command Center token: set CLARESIA_CENTER_TOKENS"),
        (
            {"CLARESIA_CENTER_TOKENS": "alice:admin:env:X"},
            "CLARESIA_CENTER_TOKENS: entry 1 (alice): role 'admin' is not one of viewer",
        ),
        (
            {"CLARESIA_CENTER_TOKENS": "alice:operator:s3cret-pasted-token"},
            "give the token by reference, env:NAME or file:/path",
        ),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "claresia_sync", "center", "--port", "0"],
            env={**env, **extra},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 1, done.stderr
        assert expected in done.stderr and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and "s3cret" not in done.stderr
    variables, _, viewer, port = center_env(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "claresia_sync", "center"],
        env={**env, **variables},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    c = CenterProcess(None, f"http://127.0.0.1:{port}", "", viewer)  # type: ignore[arg-type]
    try:

        def answers() -> bool:
            try:
                return c.api("GET", "/whoami", viewer).status_code == 200
            except httpx2.HTTPError:
                return False

        wait_until(answers, 30, "claresia-sync center")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0


def test_a_database_outage_is_a_503_in_the_envelope_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The Command Center on a database that refuses connections (the port of none)."""
    token = secrets.token_urlsafe(24)
    monkeypatch.setenv("CLARESIA_CENTER_TOKEN_T", token)
    monkeypatch.setenv("CLARESIA_CENTER_TOKENS", "t:operator:env:CLARESIA_CENTER_TOKEN_T")
    engine = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none")
    center = make_center(engine, Settings.load())
    server = uvicorn.Server(uvicorn.Config(center_app(center), port=free_port(), log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.config.port}"
    try:
        wait_until(lambda: server.started, 10, "the Command Center")
        headers = {"Authorization": f"Bearer {token}"}
        for method, path in (("GET", "/api/v1/tenants"), ("POST", "/api/v1/publish")):
            answer = httpx2.request(method, url + path, headers=headers, json={}, timeout=30)
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"]["code"] == "unavailable"
        page = httpx2.get(url + "/login", timeout=30)
        assert page.status_code == 200  # the login page needs no database
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert "Traceback" not in caplog.text
    assert "database unavailable" in caplog.text
