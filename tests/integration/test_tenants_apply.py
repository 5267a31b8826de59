"""Declarative apply against a real PostgreSQL, and the lookups built on it."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from claresia_sync.config import Settings
from claresia_sync.db.models import (
    Archetype,
    CatalogSkill,
    OrgConnection,
    Publication,
    SkillGrant,
    Tenant,
    WorkspaceMapping,
)
from claresia_sync.emulator import EmulatorServer
from claresia_sync.tenancy import (
    TenantConfigError,
    UnknownTenantError,
    apply_tenants,
    get_connection,
    granted_skills,
    list_tenants,
    parse_tenants,
    tenant_for_workspace,
)
from tests.cli import clean_env, run_cli
from tests.integration.test_publish_e2e import apply as publish_apply
from tests.integration.test_publish_e2e import import_example_catalog, publish, tenants_data

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "tenants.example.yaml"
SKILLS = [
    "incident-postmortem",
    "prd-review",
    "standup-notes",
    "code-review-checklist",
    "meeting-summary",
    "customer-email-reply",
    "weekly-status-report",
    "sql-query-helper",
    "release-notes",
    "okr-drafting",
]


def _catalog(session: Session) -> None:
    for sid in SKILLS:
        session.add(
            CatalogSkill(
                skill_id=sid,
                version="1.0.0",
                title=sid,
                ir={"skill_id": sid},
                ir_hash="sha256:" + "a" * 64,
            )
        )
    session.commit()


def _example() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    return data


def _apply(session: Session, data: dict[str, Any], **kw: Any) -> list[str]:
    config = parse_tenants(yaml.safe_dump(data), "t.yaml")
    changes = [str(c) for c in apply_tenants(session, config, source="t.yaml", **kw)]
    session.commit()
    return changes


def _grants(session: Session) -> set[tuple[str, str, str]]:
    rows = session.execute(
        select(Tenant.slug, Archetype.slug, SkillGrant.skill_id)
        .join(Archetype, Archetype.tenant_id == Tenant.id)
        .join(SkillGrant, SkillGrant.archetype_id == Archetype.id)
    )
    return {(t, a, s) for t, a, s in rows}


@pytest.fixture
def applied(session: Session) -> Session:
    _catalog(session)
    _apply(session, _example())
    return session


def test_apply_twice_changes_nothing(session: Session) -> None:
    _catalog(session)
    first = _apply(session, _example())
    assert "+ tenant dainese-eng (Dainese Engineering) under dainese" in first
    assert "+ grant dainese-eng/engineer -> incident-postmortem" in first
    assert _apply(session, _example()) == []
    assert session.scalar(select(func.count()).select_from(Tenant)) == 6
    assert session.scalar(select(func.count()).select_from(Archetype)) == 9
    assert session.scalar(select(func.count()).select_from(WorkspaceMapping)) == 5
    assert len(_grants(session)) == 27


def test_org_skills_in_either_spelling_is_one_organisation_connection(applied: Session) -> None:
    """`targets.org-skills` (the example's) and the older `connection:` store the same
    `org_connection` row: switching spellings changes nothing; a changed field or a removed
    section changes that row."""
    older = _example()
    for root in older["tenants"][:2]:  # dainese, acme
        root["connection"] = root.pop("targets")["org-skills"]
    assert _apply(applied, older) == []
    older["tenants"][1]["connection"]["base_url"] = "http://127.0.0.1:8765"
    assert _apply(applied, older) == [
        "~ connection acme base_url: None -> http://127.0.0.1:8765"
    ]
    assert get_connection(applied, "acme").base_url == "http://127.0.0.1:8765"
    preferred = _example()
    preferred["tenants"][1]["targets"]["org-skills"]["base_url"] = "http://127.0.0.1:8765"
    assert _apply(applied, preferred) == []
    del preferred["tenants"][1]["targets"]["org-skills"]
    preferred["tenants"][1]["targets"]["claude-api"] = {
        "org_id": "org_acme",
        "workspace_keys": {"wrkspc_acme_default": "env:CLARESIA_ACME_API_KEY"},
    }
    changes = _apply(applied, preferred)
    assert "- connection acme (org-skills)" in changes, changes
    acme = applied.scalars(select(Tenant.id).where(Tenant.slug == "acme")).one()
    assert applied.get(OrgConnection, acme) is None


def test_removing_a_grant_removes_it(applied: Session) -> None:
    data = _example()
    eng = data["tenants"][0]["sub_tenants"][0]
    eng["archetypes"][0]["grants"].remove("sql-query-helper")
    eng["archetypes"][1]["rbac_group"] = "rbac_group_dainese_sre"
    changes = _apply(applied, data)
    assert sorted(changes) == [
        "- grant dainese-eng/engineer -> sql-query-helper",
        "~ archetype dainese-eng/sre rbac group: rbac_group_dainese_ops -> rbac_group_dainese_sre",
    ]
    assert ("dainese-eng", "engineer", "sql-query-helper") not in _grants(applied)
    assert ("dainese-eng", "engineer", "release-notes") in _grants(applied)


def test_structure_changes(applied: Session) -> None:
    data = _example()
    root = data["tenants"][0]
    corp = root["sub_tenants"].pop(1)  # dainese-corp goes away...
    root["sub_tenants"][0]["workspaces"].append(corp["workspaces"][0])  # ...its workspace moves
    root["archetypes"] = []
    changes = _apply(applied, data)
    assert sorted(changes) == [
        "+ workspace org_dainese/wrkspc_dainese_corp -> dainese-eng",
        "- archetype dainese/account-exec",
        "- tenant dainese-corp",
    ]
    owner = tenant_for_workspace(applied, "org_dainese", "wrkspc_dainese_corp")
    assert owner is not None and owner.tenant_slug == "dainese-eng"
    assert _apply(applied, data) == []


def test_tenants_not_in_file_stay_unless_pruned(applied: Session) -> None:
    data = _example()
    data["tenants"] = data["tenants"][:1]  # acme, ferretti and vespucci not listed
    assert _apply(applied, data) == []
    assert applied.scalar(select(Tenant).where(Tenant.slug == "acme")) is not None
    assert _apply(applied, data, prune=True) == [
        "- tenant acme",
        "- tenant ferretti",
        "- tenant vespucci",
    ]
    assert applied.scalar(select(Tenant).where(Tenant.slug == "acme")) is None
    assert applied.scalar(select(OrgConnection).where(OrgConnection.org_id == "org_acme")) is None


def test_prune_refuses_a_tenant_with_live_skills(applied: Session) -> None:
    acme = applied.scalars(select(Tenant).where(Tenant.slug == "acme")).one()
    applied.add(
        Publication(
            tenant_id=acme.id,
            skill_id="prd-review",
            published_name="claresia-acme-prd-review",
            remote_skill_id="skill_01",
            status="published",
        )
    )
    applied.commit()
    data = _example()
    data["tenants"] = data["tenants"][:1]
    with pytest.raises(TenantConfigError) as caught:
        _apply(applied, data, prune=True)
    applied.rollback()
    assert caught.value.problems == [
        "t.yaml: tenant 'acme' would be removed but has 1 published skill(s): unpublish them "
        "first (remove its grants and publish), then remove the tenant"
    ]
    assert applied.scalar(select(Tenant).where(Tenant.slug == "acme")) is not None


def test_unknown_skill_and_empty_catalog(session: Session) -> None:
    with pytest.raises(TenantConfigError) as caught:
        _apply(session, _example())
    (problem,) = caught.value.problems
    assert "catalog is empty" in problem and "claresia-sync catalog import" in problem
    session.rollback()
    _catalog(session)
    data = _example()
    data["tenants"][0]["sub_tenants"][1]["archetypes"][0]["grants"][2] = "foo"
    with pytest.raises(TenantConfigError) as caught:
        _apply(session, data)
    assert caught.value.problems == [
        "t.yaml: tenants[0].sub_tenants[1].archetypes[0].grants[2]: unknown skill 'foo' (not in "
        "the catalog: fix the id or import the skill with `claresia-sync catalog import`)"
    ]
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Tenant)) == 0


def test_workspace_held_by_an_unlisted_tenant(applied: Session) -> None:
    data = {
        "version": 1,
        "tenants": [
            {
                "slug": "newco",
                "connection": {"org_id": "org_acme", "admin_key": "env:K"},
                "workspaces": [{"id": "wrkspc_acme_default"}],
            }
        ],
    }
    with pytest.raises(TenantConfigError) as caught:
        _apply(applied, data)
    assert sorted(caught.value.problems) == [
        "t.yaml: tenants[0].connection.org_id: organisation 'org_acme' is connected to tenant "
        "'acme', which this file does not list",
        "t.yaml: tenants[0].workspaces[0]: workspace 'wrkspc_acme_default' is mapped to tenant "
        "'acme', which this file does not list: remove it there first",
    ]


def test_lookups(applied: Session) -> None:
    sub = get_connection(applied, "dainese-eng")
    assert (sub.tenant_slug, sub.root_slug, sub.org_id) == ("dainese-eng", "dainese", "org_dainese")
    assert sub.admin_key_ref == "env:CLARESIA_DAINESE_ADMIN_KEY"
    assert sub.base_url == "https://api.anthropic.com"
    assert get_connection(applied, "acme").org_id == "org_acme"
    with pytest.raises(UnknownTenantError, match=r"unknown tenant 'nope'.*acme, dainese"):
        get_connection(applied, "nope")

    owner = tenant_for_workspace(applied, "org_dainese", "wrkspc_dainese_eng")
    assert owner is not None
    assert (owner.tenant_slug, owner.parent_tenant_slug) == ("dainese-eng", "dainese")
    assert tenant_for_workspace(applied, "org_dainese", "wrkspc_unknown") is None
    assert tenant_for_workspace(applied, "org_acme", "wrkspc_dainese_eng") is None

    skills = {g.skill_id: g for g in granted_skills(applied, "dainese-eng")}
    assert set(skills) == {
        "incident-postmortem",
        "code-review-checklist",
        "standup-notes",
        "sql-query-helper",
        "release-notes",
    }
    assert skills["incident-postmortem"].rbac_group_ids == (
        "rbac_group_dainese_engineers",
        "rbac_group_dainese_ops",
    )
    assert skills["sql-query-helper"].rbac_group_ids == ("rbac_group_dainese_engineers",)
    assert skills["sql-query-helper"].workspace_ids == ("wrkspc_dainese_eng",)

    rows = list_tenants(applied)
    assert [r.slug for r in rows] == [
        "acme",
        "dainese",
        "dainese-corp",
        "dainese-eng",
        "ferretti",
        "vespucci",
    ]
    assert rows[3].org_id == "org_dainese" and rows[3].grants == 7
    assert rows[4].org_id == "org_ferretti"  # from its claude-enterprise target


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env=clean_env(settings))


def test_cli_apply_dry_run_and_list(
    session: Session, db_settings: Settings, tmp_path: Path
) -> None:
    _catalog(session)
    dry = _cli(db_settings, "tenants", "apply", "--dry-run", str(EXAMPLE))
    assert dry.returncode == 0, dry.stderr
    assert "+ tenant dainese (Dainese S.p.A.)" in dry.stdout and "would change 53" in dry.stdout
    assert session.scalar(select(func.count()).select_from(Tenant)) == 0

    assert _cli(db_settings, "tenants", "apply", str(EXAMPLE)).returncode == 0
    again = _cli(db_settings, "tenants", "apply", str(EXAMPLE))
    assert "no changes" in again.stdout

    listing = _cli(db_settings, "tenants", "list")
    assert listing.returncode == 0
    assert "dainese-eng" in listing.stdout and "wrkspc_acme_default" in listing.stdout

    bad = tmp_path / "bad.yaml"
    bad.write_text(EXAMPLE.read_text().replace("slug: sre", "slug: claude-sre"))
    result = _cli(db_settings, "tenants", "apply", str(bad))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith(f"{bad}: tenants[0].sub_tenants[0].archetypes[1].slug: archetype")
    assert lines[-1] == f"claresia-sync: error: {bad}: 1 problem(s); nothing was applied"


def test_an_archetype_of_an_unknown_rbac_group_fails_only_its_skills(
    engine: Engine, emulator_env: EmulatorServer
) -> None:
    """An archetype whose group the organisation does not have: the pre-flight (issue 13 item
    10) fails its skills before any write, naming the group and organisation; the rest
    publish."""
    import_example_catalog(engine)
    data = tenants_data(emulator_env)
    sales = data["tenants"][0]["archetypes"][0]
    sales["rbac_group"] = "rbac_group_dainese_nope"
    publish_apply(engine, data)
    outcome = publish(engine, "dainese")
    assert outcome.status == "partial"
    assert outcome.stats["failed"] == len(sales["grants"]) == 3
    says = "rbac group(s) rbac_group_dainese_nope not in organisation org_dainese"
    live = emulator_env.state.org("org_dainese").names
    for error in outcome.errors:
        assert error["tenant"] == "dainese" and says in error["error"], error
        assert error["name"] not in live  # refused before it was created

    sales["rbac_group"] = "rbac_group_dainese_sales"
    publish_apply(engine, data)
    assert publish(engine, "dainese").status == "succeeded"
