"""A target kind is one module and one line in the kinds table: the test-only `memory` kind
(tests/kinds/memory.py), registered by this test, is configured from its tenants-file section,
applied, looked up, checked and published to through the same product code as the real kinds,
none of which names it (real PostgreSQL)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from claresia_sync.db.models import Publication, TenantTarget
from claresia_sync.publish.targets import KINDS, registered
from claresia_sync.status import organisations
from claresia_sync.target_check import check_targets
from claresia_sync.telemetry.analytics_reader import connections_offering
from claresia_sync.telemetry.sources import CLAUDE_CODE_OTLP, SKILLS_ANALYTICS, SourceState
from claresia_sync.tenancy import TenantConfigError, apply_tenants, parse_tenants
from claresia_sync.tenancy.lookup import tenant_targets
from tests.integration.test_publish_e2e import import_example_catalog, names, publish
from tests.kinds.memory import (
    MEMORY,
    OPENED,
    SHELF_KEY,
    SHELVES,
    MemoryKind,
    MemorySection,
    ShelfAccess,
)

LEMURIA = """
version: 1
tenants:
  - slug: lemuria
    zero_retention: {attested_by: Ada Lemuria <ada@lemuria.example>, attested_at: 2026-12-01}
    targets:
      memory:
        org_id: org_lemuria
        shelves: {shelf_main: env:LEMURIA_MAIN_KEY, shelf_data: env:LEMURIA_DATA_KEY}
    workspaces: [{id: shelf_main}]
    archetypes:
      - {slug: engineer, rbac_group: rbac_group_lemuria_eng,
         grants: [code-review-checklist, prd-review]}
    sub_tenants:
      - slug: lemuria-data
        workspaces: [{id: shelf_data}]
        archetypes: [{slug: analyst, rbac_group: rbac_group_lemuria_data,
                      grants: [meeting-summary]}]
"""


@pytest.fixture
def memory_kind(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("LEMURIA_MAIN_KEY", "mem-main-0000000000000000")
    monkeypatch.setenv("LEMURIA_DATA_KEY", "mem-data-0000000000000000")
    SHELVES.clear()
    OPENED.clear()
    with registered(MEMORY):
        yield
    assert "memory" not in KINDS


def _data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(LEMURIA)
    return data


def _problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(TenantConfigError) as caught:
        parse_tenants(yaml.safe_dump(data), "t.yaml")
    return caught.value.problems


def _apply(engine: Engine, data: dict[str, Any]) -> list[str]:
    with Session(engine) as s:
        config = parse_tenants(yaml.safe_dump(data), "t.yaml")
        changes = [str(c) for c in apply_tenants(s, config, source="t.yaml")]
        s.commit()
    return changes


def test_the_tenants_file_knows_a_kind_only_once_it_is_registered() -> None:
    assert _problems(_data()) == [
        "t.yaml: tenants[0].targets.memory: unknown key (allowed here: org-skills, "
        "claude-enterprise, claude-api)"
    ]
    with registered(MEMORY):
        config = parse_tenants(LEMURIA, "t.yaml")
    section = config.tenants[0].targets.section("memory") if config.tenants[0].targets else None
    assert isinstance(section, MemorySection)
    assert section.shelves == {
        "shelf_main": "env:LEMURIA_MAIN_KEY",
        "shelf_data": "env:LEMURIA_DATA_KEY",
    }
    assert config.tenants[0].org_id == "org_lemuria"


@pytest.mark.usefixtures("memory_kind")
def test_its_section_is_checked_like_the_others() -> None:
    data = _data()
    section = data["tenants"][0]["targets"]["memory"]
    section["shelfs"] = section.pop("shelves")
    assert _problems(data) == [
        "t.yaml: tenants[0].targets.memory.shelves: required key is missing",
        "t.yaml: tenants[0].targets.memory.shelfs: unknown key (allowed here: org_id, shelves); "
        "did you mean 'shelves'?",
    ]
    data = _data()
    data["tenants"][0]["targets"]["memroy"] = data["tenants"][0]["targets"].pop("memory")
    assert _problems(data) == [
        "t.yaml: tenants[0].targets.memroy: unknown key (allowed here: org-skills, "
        "claude-enterprise, claude-api, memory); did you mean 'memory'?"
    ]
    data = _data()
    data["tenants"][0]["targets"]["memory"]["shelves"] = {"shelf_main": "sk-mem-pasted-key"}
    data["tenants"][0]["targets"]["memory"]["org_id"] = "org other"
    problems = _problems(data)
    assert any(
        p.startswith("t.yaml: tenants[0].targets.memory.shelves.shelf_main: an admin key was")
        for p in problems
    ), problems
    assert any(p.startswith("t.yaml: tenants[0].targets.memory.org_id:") for p in problems)
    assert all("pasted" not in p for p in problems)
    data = _data()
    data["tenants"][0]["targets"]["memory"]["shelves"] = {}
    assert _problems(data) == ["t.yaml: tenants[0].targets.memory.shelves: give at least one shelf"]


@pytest.mark.usefixtures("memory_kind")
def test_applied_looked_up_checked_and_published_to(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import_example_catalog(engine)
    changes = _apply(engine, _data())
    assert (
        "+ target lemuria memory: org org_lemuria, keys env:LEMURIA_DATA_KEY, env:LEMURIA_MAIN_KEY"
    ) in changes
    assert _apply(engine, _data()) == []  # applying again changes nothing

    with Session(engine) as s:
        row = s.scalars(select(TenantTarget)).one()
        assert (row.kind, row.workspace_key_refs) == (
            "memory",
            {"shelf_data": "env:LEMURIA_DATA_KEY", "shelf_main": "env:LEMURIA_MAIN_KEY"},
        )
        conns = tenant_targets(s, "lemuria")
    # Its fan-out: one connection per shelf, each with its key and the kind's key family.
    assert [(c.target_key, c.admin_key_ref) for c in conns] == [
        ("memory:shelf_data", "env:LEMURIA_DATA_KEY"),
        ("memory:shelf_main", "env:LEMURIA_MAIN_KEY"),
    ]
    assert {c.key_family for c in conns} == {SHELF_KEY}

    # Its connection check, through `connection test`'s one entry.
    reports = asyncio.run(check_targets(conns, {"lemuria/engineer": "rbac_group_lemuria_eng"}))
    assert [(r.target, r.problems) for r in reports] == [
        ("memory:shelf_data", []),
        ("memory:shelf_main", []),
    ]
    assert reports[1].lines[0] == "Shelf:          shelf_main (key …0000), 0 skill(s)"
    monkeypatch.setenv("LEMURIA_DATA_KEY", "sk-ant-admin01-not-a-shelf-key-000000000000")
    wrong = asyncio.run(check_targets(conns, {}))[0]
    assert wrong.problems[0].startswith(
        "organisation org_lemuria workspace shelf_data (tenant 'lemuria'): memory shelf key: "
        "the key at 'env:LEMURIA_DATA_KEY' (ending …0000) is an Anthropic admin key, but a "
        "memory shelf key is needed here"
    ), wrong.problems
    monkeypatch.setenv("LEMURIA_DATA_KEY", "mem-data-0000000000000000")

    # Published to: each tenant's grants on the shelf mapped to it, recorded per shelf.
    outcome = publish(engine)
    assert outcome.status == "succeeded", outcome.errors
    main, data = SHELVES[("org_lemuria", "shelf_main")], SHELVES[("org_lemuria", "shelf_data")]
    assert {s.name for s in main.values()} == names(
        "lemuria", {"code-review-checklist", "prd-review"}
    )
    assert {s.name for s in data.values()} == names("lemuria-data", {"meeting-summary"})
    assert {s.access for s in main.values()} == {ShelfAccess(("rbac_group_lemuria_eng",))}
    assert OPENED and all(key.startswith("mem-") for key in OPENED)
    with Session(engine) as s:
        targets = set(s.scalars(select(Publication.target)))
    assert targets == {"memory:shelf_main", "memory:shelf_data"}

    # A revoked grant is removed from its shelf; a republish is a no-op.
    revoked = _data()
    revoked["tenants"][0]["archetypes"][0]["grants"] = ["prd-review"]
    _apply(engine, revoked)
    outcome = publish(engine, "lemuria")
    assert outcome.status == "succeeded", outcome.errors
    assert {s.name for s in main.values()} == names("lemuria", {"prd-review"})
    again = publish(engine)
    assert again.stats["created"] == again.stats["deleted"] == 0


class DeclaringMemory(MemoryKind):
    """The memory kind declaring the features a kind may own: its organisations take Claude
    Code's managed settings and offer the skills analytics."""

    claude_code_settings = True
    telemetry_sources = (SKILLS_ANALYTICS,)


def test_what_a_kind_declares_the_product_follows(engine: Engine) -> None:
    """No product module changes: the `otlp:` opt-in, a telemetry source's connections and
    `status` read what the kind declares."""
    data = _data()
    root = data["tenants"][0]
    root["otlp_token"] = "env:LEMURIA_OTLP_TOKEN"
    root["otlp"] = {"manage_claude_code_settings": True, "endpoint": "https://r.example:4318"}
    with registered(MEMORY):  # declares neither
        assert _problems(data) == [
            "t.yaml: tenants[0].otlp.manage_claude_code_settings: needs the claude-enterprise "
            "target (the managed-settings API is Claude Enterprise's): add "
            "targets.claude-enterprise"
        ]
    with registered(DeclaringMemory()):
        parse_tenants(yaml.safe_dump(data), "t.yaml")  # the opt-in has its target
        import_example_catalog(engine)
        _apply(engine, data)
        with Session(engine) as s:
            offered = [c.target_key for c in connections_offering(s, SKILLS_ANALYTICS)]
        assert offered == ["memory:shelf_data", "memory:shelf_main"]

        now = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)
        export = SourceState(CLAUDE_CODE_OTLP, "lemuria", now, now, None, 1.0, 0)
        (org,) = organisations(
            [("lemuria", "org_lemuria", "memory:shelf_main")], [], [export], now
        )
        assert [(f.source, f.last_run_at) for f in org.sources] == [
            (SKILLS_ANALYTICS, None),  # expected, never ran: shown without a run
            (CLAUDE_CODE_OTLP, now),  # the tenant's Claude Code export, with its organisation
        ]
    with registered(MEMORY), Session(engine) as s:
        assert connections_offering(s, SKILLS_ANALYTICS) == []
    (org,) = organisations([("lemuria", "org_lemuria", "memory:shelf_main")], [], [], now)
    assert org.sources == ()
