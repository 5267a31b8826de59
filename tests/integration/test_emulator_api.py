"""The emulator's HTTP surface with a plain HTTP client: error shapes and headers, the picker
visibility rule, simulated invocations, stats ("no writes"), faults and control routes."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from claresia_sync.emulator import EmulatorServer
from tests.fixtures.emulator import ACME_KEY, DAINESE_KEY, DAINESE_ORG, skill_payload

HEADERS = {"x-api-key": DAINESE_KEY, "anthropic-version": "2023-06-01"}


@pytest.fixture
def http(emulator: EmulatorServer) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=emulator.base_url, timeout=10) as client:
        yield client


def publish(http: httpx2.Client, name: str, workspaces: list[str], groups: list[str]) -> str:
    created = http.post(
        f"/v1/organizations/{DAINESE_ORG}/skills", json=skill_payload(name), headers=HEADERS
    )
    assert created.status_code == 201, created.text
    skill_id: str = created.json()["id"]
    acl = http.put(
        f"/v1/organizations/{DAINESE_ORG}/skills/{skill_id}/access",
        json={"workspace_ids": workspaces, "rbac_group_ids": groups},
        headers=HEADERS,
    )
    assert acl.status_code == 200, acl.text
    return skill_id


@pytest.mark.parametrize(
    ("headers", "status", "error_type"),
    [
        ({"anthropic-version": "2023-06-01"}, 401, "authentication_error"),
        ({**HEADERS, "x-api-key": "sk-ant-admin01-unknown"}, 401, "authentication_error"),
        ({"x-api-key": DAINESE_KEY}, 400, "invalid_request_error"),
    ],
)
def test_error_shape_and_request_id(
    http: httpx2.Client, headers: dict[str, str], status: int, error_type: str
) -> None:
    answer = http.get("/v1/organizations/me", headers=headers)
    body = answer.json()
    assert answer.status_code == status
    assert set(body) == {"type", "error", "request_id"} and body["type"] == "error"
    assert body["error"]["type"] == error_type and body["error"]["message"]
    assert answer.headers["request-id"] == body["request_id"]
    assert body["request_id"].startswith("req_")


def test_list_shape_and_success_headers(http: httpx2.Client) -> None:
    answer = http.get("/v1/organizations/rbac_groups", params={"limit": 2}, headers=HEADERS)
    body = answer.json()
    assert answer.headers["request-id"].startswith("req_")
    assert set(body) == {"data", "has_more", "first_id", "last_id"}
    assert body["has_more"] is True and len(body["data"]) == 2
    assert body["first_id"] == body["data"][0]["id"] and body["last_id"] == body["data"][1]["id"]
    assert body["data"][0] == {"type": "rbac_group", "id": body["first_id"], "name": "engineers"}


def test_conflict_carries_existing_id(http: httpx2.Client) -> None:
    first = publish(http, "claresia-dainese-prd-review", [], [])
    again = http.post(
        f"/v1/organizations/{DAINESE_ORG}/skills",
        json=skill_payload("claresia-dainese-prd-review"),
        headers=HEADERS,
    )
    assert again.status_code == 409
    assert again.json()["error"]["existing_id"] == first


def test_visibility_needs_a_workspace_and_a_group(http: httpx2.Client) -> None:
    eng = publish(
        http,
        "claresia-dainese-eng-incident-postmortem",
        ["wrkspc_dainese_eng"],
        ["rbac_group_dainese_engineers"],
    )
    corp = publish(
        http,
        "claresia-dainese-corp-prd-review",
        ["wrkspc_dainese_corp"],
        ["rbac_group_dainese_product"],
    )
    publish(http, "claresia-dainese-no-acl", [], [])

    def seen(user: str) -> set[str]:
        answer = http.get("/_emulator/visible", params={"org_id": DAINESE_ORG, "user_id": user})
        assert answer.status_code == 200
        return {s["id"] for s in answer.json()["data"]}

    assert seen("user_dainese_ana") == {eng}  # eng workspace + engineers group
    assert seen("user_dainese_giulia") == set()  # eng workspace, but only the ops group
    assert seen("user_dainese_guest") == set()  # eng workspace, no group
    assert seen("user_dainese_luca") == {corp}
    assert seen("user_dainese_sofia") == {corp}  # product group; eng workspace gives nothing
    assert seen("user_dainese_paolo") == set()
    missing = http.get("/_emulator/visible", params={"org_id": DAINESE_ORG, "user_id": "user_x"})
    assert missing.status_code == 404


def _events(http: httpx2.Client, **params: Any) -> list[dict[str, Any]]:
    answer = http.get(
        f"/v1/organizations/{DAINESE_ORG}/audit_logs",
        params={"limit": 1000, **params},
        headers=HEADERS,
    )
    assert answer.status_code == 200
    data: list[dict[str, Any]] = answer.json()["data"]
    return data


def test_invocations_come_only_from_visible_skills(
    http: httpx2.Client, emulator: EmulatorServer
) -> None:
    publish(http, "claresia-dainese-eng-a", ["wrkspc_dainese_eng"], ["rbac_group_dainese_ops"])
    publish(
        http,
        "claresia-dainese-b",
        ["wrkspc_dainese_corp", "wrkspc_dainese_sales"],
        ["rbac_group_dainese_sales"],
    )
    made = http.post(
        "/_emulator/invocations",
        json={"org_id": DAINESE_ORG, "count": 300, "failure_rate": 0.0, "seed": 7},
    )
    assert made.status_code == 201 and made.json()["generated"] == 300
    events = _events(http)
    assert len(events) == 300 and {e["type"] for e in events} == {"skill.invoked"}
    for e in events:
        visible = emulator.state.visible_skills(DAINESE_ORG, e["actor"]["user_id"])
        assert e["skill"]["id"] in {s.id for s in visible}
        skill = emulator.state.skill(DAINESE_ORG, e["skill"]["id"])
        user = emulator.state.orgs[DAINESE_ORG].users[e["actor"]["user_id"]]
        assert e["workspace_id"] in set(skill.workspace_ids) & user.workspaces
        assert e["error"] is None and float(e["invocation"]["cost_usd"]) > 0
        assert e["skill"]["version"] == skill.latest_version
    users = {e["actor"]["user_id"] for e in events}
    assert users == {
        "user_dainese_marco",
        "user_dainese_giulia",
        "user_dainese_paolo",
        "user_dainese_elena",
    }

    failing = http.post(
        "/_emulator/invocations",
        json={
            "org_id": DAINESE_ORG,
            "count": 20,
            "failure_rate": 1.0,
            "user_id": "user_dainese_paolo",
            "skill": "claresia-dainese-b",
        },
    )
    assert failing.status_code == 201
    failed = _events(http, after_id=events[-1]["id"])
    assert len(failed) == 20 and all(e["type"] == "skill.failed" for e in failed)
    assert all(e["error"]["type"] for e in failed)
    assert all(e["workspace_id"] == "wrkspc_dainese_sales" for e in failed)
    ids = [e["id"] for e in events + failed]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)

    nobody = http.post(
        "/_emulator/invocations",
        json={"org_id": DAINESE_ORG, "count": 1, "user_id": "user_dainese_guest"},
    )
    assert nobody.status_code == 400 and "@ picker" in nobody.json()["error"]["message"]


def test_stats_count_routes_and_prove_no_writes(
    http: httpx2.Client, emulator: EmulatorServer
) -> None:
    skill_id = publish(http, "claresia-dainese-x", [], [])
    http.post("/_emulator/stats/reset")
    for _ in range(3):
        http.get(f"/v1/organizations/{DAINESE_ORG}/skills/{skill_id}", headers=HEADERS)
    http.get("/v1/organizations/me", headers=HEADERS)
    stats = http.get("/_emulator/stats").json()
    assert stats["writes"] == 0 and stats["total"] == 4
    assert {
        "method": "GET",
        "route": "/v1/organizations/{org_id}/skills/{skill_id}",
        "status": 200,
        "count": 3,
    } in stats["calls"]
    http.delete(f"/v1/organizations/{DAINESE_ORG}/skills/{skill_id}", headers=HEADERS)
    assert emulator.stats.writes() == 1


def test_fault_configuration_and_control_routes(
    http: httpx2.Client, emulator: EmulatorServer
) -> None:
    bad = http.post("/_emulator/faults", json={"rate_503": 2})
    assert bad.status_code == 400 and "rate_503" in bad.json()["error"]["message"]
    ok = http.post("/_emulator/faults", json={"script": [429], "retry_after_s": 4})
    assert ok.status_code == 200
    limited = http.get("/v1/organizations/me", headers=HEADERS)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "4"
    assert limited.json()["error"]["type"] == "rate_limit_error"
    assert http.get("/_emulator/health").status_code == 200  # control routes never faulted
    assert http.get("/v1/organizations/me", headers=HEADERS).status_code == 200

    off = http.post(f"/_emulator/orgs/{DAINESE_ORG}", json={"zero_data_retention": False})
    assert off.json()["zero_data_retention"] is False
    me = http.get("/v1/organizations/me", headers=HEADERS).json()
    assert me["zero_data_retention"] is False
    acme = http.get("/v1/organizations/me", headers={**HEADERS, "x-api-key": ACME_KEY}).json()
    assert acme["zero_data_retention"] is True

    publish(http, "claresia-dainese-y", [], [])
    assert http.post("/_emulator/reset").status_code == 200
    assert emulator.state.orgs[DAINESE_ORG].skills == {}
    assert http.get("/v1/organizations/me", headers=HEADERS).json()["zero_data_retention"]
    assert http.get("/_emulator/faults").json()["script"] == []


def test_raw_audit_events_and_latency_fault(http: httpx2.Client) -> None:
    added = http.post(
        "/_emulator/audit_events",
        json={"org_id": DAINESE_ORG, "events": [{"type": "user.login"}, {"weird": True}]},
    )
    assert added.status_code == 201 and len(added.json()["ids"]) == 2
    http.post("/_emulator/faults", json={"latency_ms": 5})
    everything = http.get(f"/v1/organizations/{DAINESE_ORG}/audit_logs", headers=HEADERS).json()[
        "data"
    ]
    assert [e["id"] for e in everything] == added.json()["ids"]
    assert everything[1]["weird"] is True and everything[1]["type"] == "custom.event"
    assert _events(http, event_types="skill.invoked,skill.failed") == []


def test_a_client_hanging_up_mid_body_is_not_an_emulator_error(
    emulator: EmulatorServer, http: httpx2.Client
) -> None:
    """A daemon SIGKILLed mid-upload leaves a half-sent request: no traceback, counted as no
    answer, and the emulator keeps serving."""
    errors: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = errors.append  # type: ignore[method-assign]
    uvicorn_log = logging.getLogger("uvicorn.error")  # uvicorn's own logger does not propagate
    uvicorn_log.addHandler(handler)
    head = (
        f"POST /v1/organizations/{DAINESE_ORG}/skills HTTP/1.1\r\n"
        f"host: 127.0.0.1\r\nx-api-key: {DAINESE_KEY}\r\nanthropic-version: 2023-06-01\r\n"
        'content-type: application/json\r\ncontent-length: 5000\r\n\r\n{"name": '
    )
    try:
        with socket.create_connection(("127.0.0.1", emulator.port)) as sock:
            sock.sendall(head.encode())
            time.sleep(0.3)  # the handler is now waiting for the rest of the body
        deadline = time.monotonic() + 5
        while emulator.stats.count(method="POST") == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
    finally:
        uvicorn_log.removeHandler(handler)
    assert emulator.stats.count(method="POST", status=0) == 1, emulator.stats.to_json()
    assert not errors, [r.getMessage() for r in errors]
    assert http.get(f"/v1/organizations/{DAINESE_ORG}/skills", headers=HEADERS).status_code == 200
