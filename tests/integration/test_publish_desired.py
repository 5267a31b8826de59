"""Desired state from the database: grants, ACLs, deprecation, scope, name clashes."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, event, select, update
from sqlalchemy.orm import Session

from claresia_sync.db.models import (
    Archetype,
    CatalogSkill,
    OrgConnection,
    SkillGrant,
    Tenant,
    WorkspaceMapping,
)
from claresia_sync.emulator import EmulatorServer
from claresia_sync.errors import UserError
from claresia_sync.publish import Acl, desired_state
from claresia_sync.release_store import cut_release
from claresia_sync.tenancy import UnknownTenantError
from tests.integration.test_publish_e2e import (
    publish,
    world,  # noqa: F401  (fixture)
)


def test_acl_is_tenant_workspaces_and_granted_groups(
    engine: Engine,
    world: dict[str, Any],  # noqa: F811
) -> None:
    with Session(engine) as s:
        orgs = desired_state(s)
    assert [o.org_id for o in orgs] == [
        "org_acme",
        "org_dainese",
        "org_ferretti",
        "org_vespucci",
    ]
    dainese = {d.name: d for d in orgs[1].skills}
    assert len(dainese) == 13
    postmortem = dainese["claresia-dainese-eng-incident-postmortem"]
    assert postmortem.access == Acl(
        ("wrkspc_dainese_eng",), ("rbac_group_dainese_engineers", "rbac_group_dainese_ops")
    )
    assert dainese["claresia-dainese-eng-sql-query-helper"].access.rbac_group_ids == (
        "rbac_group_dainese_engineers",
    )
    assert dainese["claresia-dainese-meeting-summary"].access == Acl(
        ("wrkspc_dainese_sales",), ("rbac_group_dainese_sales",)
    )
    assert postmortem.skill is not None and postmortem.error is None
    assert postmortem.skill.metadata["claresia.tenant"] == "dainese-eng"
    assert orgs[1].scope == {"dainese", "dainese-eng", "dainese-corp"}


def test_scope_deprecation_and_unknown_tenant(
    engine: Engine,
    world: dict[str, Any],  # noqa: F811
) -> None:
    with Session(engine) as s:
        s.execute(
            update(CatalogSkill)
            .where(CatalogSkill.skill_id == "okr-drafting")
            .values(deprecated=True)
        )
        assert cut_release(s) == 2  # the catalog as it now stands (catalog import does this)
        [sub] = desired_state(s, "dainese-corp")
        assert sub.scope == {"dainese-corp"} and set(sub.tenants) == {
            "dainese",
            "dainese-eng",
            "dainese-corp",
        }
        assert {d.skill_id for d in sub.skills} == {
            "prd-review",
            "meeting-summary",
            "weekly-status-report",
            "release-notes",
        }
        assert sub.deprecated == {"okr-drafting"}
        with pytest.raises(UnknownTenantError, match="unknown tenant 'nope'"):
            desired_state(s, "nope")


def test_two_pairs_with_one_published_name_both_fail(
    engine: Engine,
    emulator: EmulatorServer,
    world: dict[str, Any],  # noqa: F811
) -> None:
    # Tenant dainese + skill eng-standup-notes == sub-tenant dainese-eng + skill standup-notes.
    with Session(engine) as s:
        row = s.get(CatalogSkill, "standup-notes")
        assert row is not None
        ir = {**row.ir, "skill_id": "eng-standup-notes"}
        s.add(
            CatalogSkill(
                skill_id="eng-standup-notes",
                version=row.version,
                title=row.title,
                ir=ir,
                ir_hash=row.ir_hash,
            )
        )
        cut_release(s)
        s.commit()
        # `tenants apply` refuses such a file; rows written another way must not slip through.
        exec_id = s.scalar(select(Archetype.id).where(Archetype.slug == "account-exec"))
        s.add(SkillGrant(archetype_id=exec_id, skill_id="eng-standup-notes"))
        s.commit()
    with Session(engine) as s:
        [org] = desired_state(s, "dainese")
    clash = [d for d in org.skills if d.name == "claresia-dainese-eng-standup-notes"]
    assert len(clash) == 2
    assert all(d.error and "rename the skill or the sub-tenant" in d.error for d in clash)
    assert {d.tenant_slug for d in clash} == {"dainese", "dainese-eng"}

    outcome = publish(engine, "dainese")
    assert outcome.status == "partial"
    assert outcome.stats["failed"] == 2 and outcome.stats["created"] == 12
    remote = {s.name for s in emulator.state.org("org_dainese").skills.values()}
    assert "claresia-dainese-eng-standup-notes" not in remote


def test_a_tenant_without_an_organisation_is_a_clear_error(
    engine: Engine,
    world: dict[str, Any],  # noqa: F811
) -> None:
    with Session(engine) as s:
        s.add(Tenant(slug="loner", display_name="No connection"))
        s.commit()
        with pytest.raises(UserError, match="tenant 'loner' has no organisation connection"):
            desired_state(s, "loner")
        assert "loner" not in {t for o in desired_state(s) for t in o.tenants}


def test_stored_ir_is_parsed_once_per_process(
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    world: dict[str, Any],  # noqa: F811
) -> None:
    """issue 14: no re-parsing of stored IR on every run; a new catalog version is parsed."""
    from claresia_sync.publish import desired

    parsed: list[str] = []
    real = desired.parse_ir

    def counting(data: bytes, source: str) -> Any:
        parsed.append(source)
        return real(data, source)

    monkeypatch.setattr(desired, "parse_ir", counting)
    monkeypatch.setattr(desired, "_PARSED", {})
    with Session(engine) as s:
        desired_state(s, "dainese")
        first = len(parsed)
        desired_state(s, "dainese")
    assert first > 0 and len(parsed) == first
    with Session(engine) as s:
        s.execute(
            update(CatalogSkill)
            .where(CatalogSkill.skill_id == "prd-review")
            .values(ir_hash="sha256:" + "1" * 64)
        )
        cut_release(s)
        s.commit()
        desired_state(s, "dainese")
    assert parsed[first:] == ["catalog skill 'prd-review'"]


def test_one_tenants_desired_state_reads_its_organisation_only(
    engine: Engine,
    world: dict[str, Any],  # noqa: F811
) -> None:
    """issue 23: a republish-all's unit (one root tenant) read every tenant, grant and mapping
    of every organisation: O(tenants) per unit, O(tenants^2) per republish-all. Twenty more
    organisations with grants add one row each (the slug list a remote stray is judged by)."""
    rows: list[int] = []

    def counted(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            rows.append(max(cursor.rowcount, 0))

    def read_by_one_unit() -> tuple[int, list[str]]:
        rows.clear()
        event.listen(engine, "after_cursor_execute", counted)
        try:
            with Session(engine) as s:
                [org] = desired_state(s, "dainese")
        finally:
            event.remove(engine, "after_cursor_execute", counted)
        return sum(rows), sorted(d.name for d in org.skills)

    before, skills = read_by_one_unit()
    with Session(engine) as s:
        granted = list(s.scalars(select(CatalogSkill.skill_id)))
        for i in range(20):
            t = Tenant(slug=f"other{i}", display_name=f"Other {i}")
            s.add(t)
            s.flush()
            s.add(OrgConnection(tenant_id=t.id, org_id=f"org_other{i}", admin_key_ref="env:X"))
            s.add(WorkspaceMapping(org_id=f"org_other{i}", workspace_id=f"ws{i}", tenant_id=t.id))
            arch = Archetype(tenant_id=t.id, slug="staff", rbac_group_id=f"rbac_group_o{i}")
            arch.grants = [SkillGrant(skill_id=k) for k in granted]
            s.add(arch)
        s.commit()
    after, same = read_by_one_unit()
    assert same == skills and len(granted) > 1
    assert after - before == 20
