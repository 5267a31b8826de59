"""The Command Center's views of issue 24 through the operator API of a real daemon: access in
words on a tenant, the organisations of every target with each telemetry source's freshness and
last error."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, text

from claresia_sync.emulator import EmulatorServer
from claresia_sync.telemetry import sources
from tests.cli import clean_env, run_cli
from tests.fixtures.analyst import DAY1, DAY2, SINCE, fill_every_source
from tests.fixtures.center import CenterProcess, publish_everything
from tests.fixtures.daemon import wait_until


def _access(detail: dict[str, Any], skill: str) -> list[str]:
    pub = next(p for p in detail["publications"] if p["skill_id"] == skill)
    return [g["text"] for g in pub["access"]]


def test_a_tenant_says_who_gets_its_skills_in_words(
    center_module: CenterProcess, emulator: EmulatorServer
) -> None:
    c = center_module
    publish_everything(c)
    ferretti = c.api("GET", "/tenants/ferretti", c.viewer_token).json()
    assert {p["target"] for p in ferretti["publications"]} == {"claude-enterprise"}
    assert _access(ferretti, "prd-review") == [
        "everyone else in the organisation: not available",
        "group rbac_group_ferretti_designers (archetype ferretti/designer): available to install",
    ]
    assert (
        "group rbac_group_ferretti_engineers (archetype ferretti/engineer): installed automatically"
    ) in _access(ferretti, "incident-postmortem")
    archetypes = {a["slug"]: a for a in ferretti["access"]["archetypes"]}
    assert archetypes["designer"]["installation_words"] == "available to install"
    assert archetypes["designer"]["grants"] == ["meeting-summary", "prd-review"]
    assert ferretti["access"]["targets"] == [
        {"target": "claude-enterprise", "org_id": "org_ferretti"}
    ]

    vespucci = c.api("GET", "/tenants/vespucci", c.viewer_token).json()
    assert _access(vespucci, "meeting-summary") == [
        "workspace vespucci-support (wrkspc_vespucci_support): every API key of it"
    ]
    assert vespucci["access"]["workspaces"] == [
        {"id": "wrkspc_vespucci_support", "name": "vespucci-support", "org_id": "org_vespucci"}
    ]
    eng = c.api("GET", "/tenants/dainese-eng", c.viewer_token).json()
    assert _access(eng, "sql-query-helper") == [
        "workspace dainese-engineering (wrkspc_dainese_eng): the groups below may use it there",
        "group rbac_group_dainese_engineers (archetype dainese-eng/engineer): its members may "
        "use it in the workspaces above",
    ]
    pub = next(p for p in eng["publications"] if p["skill_id"] == "sql-query-helper")
    assert pub["remote_id"] and pub["version"] and pub["content_hash"].startswith("sha256:")


def test_every_target_organisation_with_each_source_freshness_and_error(
    center_module: CenterProcess,
) -> None:
    c = center_module
    assert c.engine is not None
    engine: Engine = c.engine
    wait_until(
        lambda: any(
            s["source"] == "audit-poller" and s["last_success_at"]
            for o in c.api("GET", "/organisations", c.viewer_token).json()
            for s in o["sources"]
        ),
        30,
        "an audit poll",
    )
    # written just before the read: the daemon's own runs of these sources are a minute apart
    sources.record_run(
        engine, sources.ACTIVITY_FEED, "org_ferretti", rows=0, error="PermissionError: 403 nope"
    )
    sources.record_run(engine, sources.SKILLS_ANALYTICS, "org_ferretti", rows=3, error=None)
    sources.record_run(engine, sources.CLAUDE_CODE_OTLP, "ferretti", rows=2, error=None)
    orgs = {o["org_id"]: o for o in c.api("GET", "/organisations", c.viewer_token).json()}
    assert set(orgs) == {"org_acme", "org_dainese", "org_ferretti", "org_vespucci"}
    assert orgs["org_vespucci"]["targets"] == ["claude-api:wrkspc_vespucci_support"]
    assert orgs["org_vespucci"]["sources"] == []  # no source reads a Skills API workspace
    assert orgs["org_dainese"]["targets"] == ["org-skills"]
    assert [s["source"] for s in orgs["org_dainese"]["sources"]] == ["audit-poller"]
    ferretti = orgs["org_ferretti"]
    assert ferretti["tenant"] == "ferretti" and ferretti["targets"] == ["claude-enterprise"]
    by_source = {s["source"]: s for s in ferretti["sources"]}
    assert list(by_source) == ["skills-analytics", "activity-feed", "claude-code-otlp"]
    assert by_source["activity-feed"]["last_error"] == "PermissionError: 403 nope"
    assert by_source["activity-feed"]["failing"] and ferretti["failing"]
    assert by_source["skills-analytics"]["last_success_age_s"] < 600
    assert by_source["claude-code-otlp"]["key"] == "ferretti"


def test_telemetry_by_source_is_the_reports_and_filters(center_module: CenterProcess) -> None:
    """GET /telemetry/by-source answers what `telemetry report --by-source` prints (one
    query), filtered by tenant, skill and source; the per-day series add up to it."""
    c = center_module
    assert c.engine is not None
    fill_every_source(c.engine)
    since = SINCE.isoformat()

    def api(path: str, **params: str) -> Any:
        answer = c.api("GET", path, c.viewer_token, params={"since": since, **params})
        assert answer.status_code == 200, answer.text
        return answer.json()

    def keyed(rows: list[dict[str, Any]]) -> dict[tuple[str, str | None], dict[str, Any]]:
        return {(r["tenant_slug"], r["skill_id"]): r for r in rows}

    env = {k: v for k, v in c.daemon.env.items() if k.startswith("CLARESIA_")}
    # The module's daemon polls every second: read both sides again until no poll came between.
    for _ in range(10):
        everything = keyed(api("/telemetry/by-source"))
        done = run_cli("telemetry", "report", "--since", since, "--by-source", "--format", "json",
                       env=clean_env(**env))  # fmt: skip
        assert done.returncode == 0, done.stderr
        printed = keyed(json.loads(done.stdout))
        later = keyed(api("/telemetry/by-source"))
        if later == everything:
            break
    assert set(printed) == set(everything)
    for key, row in printed.items():
        for column, value in row.items():
            mine = everything[key][column]
            if column in ("tenant_slug", "skill_id") or value is None:
                assert mine == value, (key, column)
            else:
                assert Decimal(str(mine)) == Decimal(str(value)), (key, column)

    prd = everything[("ferretti", "prd-review")]
    assert (prd["claude_code_activations"], prd["apps_invocations"], prd["lifecycle_events"]) == (
        3,
        19,
        2,
    )
    # The audit log's runs as stored (the database may hold other tests' events of this tenant)
    with c.engine.connect() as conn:
        runs = conn.execute(
            text(
                "SELECT count(*) FROM telemetry_event WHERE tenant_slug = 'dainese-eng' "
                "AND skill_id = 'incident-postmortem' AND event_type LIKE 'skill.%' "
                "AND occurred_at >= :since"
            ),
            {"since": SINCE},
        ).scalar_one()
    assert runs >= 5
    assert everything[("dainese-eng", "incident-postmortem")]["audit_runs"] == runs
    only = keyed(api("/telemetry/by-source", source="skills-analytics"))
    assert set(only) == {("ferretti", "prd-review")}
    assert set(keyed(api("/telemetry/by-source", skill="sprint-planning"))) == {
        ("ferretti", "sprint-planning")
    }
    assert {k[0] for k in keyed(api("/telemetry/by-source", tenant="dainese"))} == {
        "dainese",
        "dainese-eng",
    }
    daily = api("/telemetry/by-source/daily", tenant="ferretti", skill="prd-review")
    assert [d["day"] for d in daily][:2] == [DAY1.isoformat(), DAY2.isoformat()]
    assert sum(d["apps_invocations"] or 0 for d in daily) == 19
    assert sum(d["lifecycle_events"] for d in daily) == 2
    bad = c.api("GET", "/telemetry/by-source", c.viewer_token, params={"source": "rumour"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "source"


def test_a_skill_as_users_get_it_where_it_is_live_its_history_and_use(
    center_module: CenterProcess,
) -> None:
    c = center_module
    assert c.engine is not None
    publish_everything(c)
    fill_every_source(c.engine)  # (a second fill adds nothing)

    def get(path: str, **params: str) -> Any:
        return c.api("GET", path, c.viewer_token, params=params)

    page = get("/skills/prd-review", tenant="ferretti", since=SINCE.isoformat()).json()
    assert page["granted_to"] == ["acme", "dainese-corp", "ferretti"]
    md = page["skill_md"]
    assert md["tenant"] == "ferretti" and md["name"] == "claresia-ferretti-prd-review"
    assert md["text"].startswith("---\nname: claresia-ferretti-prd-review\n")
    assert md["release"] >= 1 and md["error"] is None
    (live,) = page["publications"]  # ferretti's: one target
    assert live["target"] == "claude-enterprise" and live["status"] == "published"
    assert live["content_hash"] == md["content_hash"]  # what users get is what is live
    assert live["remote_id"] and live["version"]
    assert "available to install" in " ".join(g["text"] for g in live["access"])
    assert {h["action"] for h in page["history"]} >= {"published"}
    assert {h["tenant"] for h in page["history"]} == {"ferretti"}
    (use,) = page["use"]
    assert (use["claude_code_activations"], use["apps_invocations"], use["lifecycle_events"]) == (
        3,
        19,
        2,
    )

    every = get("/skills/prd-review").json()  # no tenant: every tenant's publications
    assert every["skill_md"]["tenant"] == "acme"
    assert {(p["tenant"], p["target"]) for p in every["publications"]} == {
        ("acme", "org-skills"),
        ("dainese-corp", "org-skills"),
        ("ferretti", "claude-enterprise"),
    }
    vespucci = get("/skills/meeting-summary", tenant="vespucci").json()
    assert vespucci["skill_md"]["name"] == "claresia-vespucci-meeting-summary"
    assert [p["target"] for p in vespucci["publications"]] == ["claude-api:wrkspc_vespucci_support"]
    not_granted = get("/skills/sql-query-helper", tenant="ferretti").json()
    assert "not granted to 'ferretti'" in not_granted["skill_md"]["error"]
    assert get("/skills/no-such-skill").status_code == 404
    bad = get("/skills/Not_A_Skill")
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "skill_id"
