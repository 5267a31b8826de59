"""The Command Center's views of issue 24 through the operator API of a real daemon: access in
words on a tenant, the organisations of every target with each telemetry source's freshness and
last error."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from claresia_sync.emulator import EmulatorServer
from claresia_sync.telemetry import sources
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
