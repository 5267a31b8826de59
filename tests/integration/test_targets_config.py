"""Tenants on the real targets (issue 15): the tenants file's `targets:` and `zero_retention:`,
the key family each reference must resolve to, and what `tenants apply` stores (real PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from claresia_sync.api.connect import ConnectionKeyError, TenantConnection, connection_key
from claresia_sync.db.models import (
    Archetype,
    CatalogSkill,
    Tenant,
    TenantTarget,
    ZeroRetentionAttestation,
)
from claresia_sync.secrets import (
    ENTERPRISE_ADMIN,
    WORKSPACE_API_KEY,
    KeyReferenceError,
    resolve_key,
)
from claresia_sync.tenancy import TenantConfigError, apply_tenants, parse_tenants
from claresia_sync.tenancy.lookup import tenant_targets

FERRETTI = """
version: 1
tenants:
  - slug: ferretti
    zero_retention: {attested_by: Anna Ferretti <anna@ferretti.example>, attested_at: 2026-11-20}
    targets:
      claude-enterprise: {org_id: org_ferretti, admin_key: env:FERRETTI_ENTERPRISE_KEY}
      claude-api:
        org_id: org_ferretti
        workspace_keys: {wrkspc_ferretti_apps: env:FERRETTI_APPS_KEY}
    workspaces: [{id: wrkspc_ferretti_apps}]
    archetypes:
      - {slug: engineer, rbac_group: rbac_group_ferretti_engineers, installation: required,
         grants: [prd-review]}
      - {slug: designer, rbac_group: rbac_group_ferretti_designers, grants: [prd-review]}
    sub_tenants:
      - slug: ferretti-data
        workspaces: [{id: wrkspc_ferretti_data}]
        archetypes: [{slug: analyst, rbac_group: rbac_group_ferretti_sales, grants: []}]
"""


def _data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(FERRETTI)
    keys = data["tenants"][0]["targets"]["claude-api"]["workspace_keys"]
    keys["wrkspc_ferretti_data"] = "env:FERRETTI_DATA_KEY"
    return data


def _problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(TenantConfigError) as caught:
        parse_tenants(yaml.safe_dump(data), "t.yaml")
    return caught.value.problems


def test_a_tenant_on_both_real_targets() -> None:
    config = parse_tenants(yaml.safe_dump(_data()), "t.yaml")
    ferretti = config.tenants[0]
    assert ferretti.connection is None and ferretti.org_id == "org_ferretti"
    assert ferretti.targets is not None and ferretti.targets.claude_enterprise is not None
    assert ferretti.targets.claude_enterprise.admin_key == "env:FERRETTI_ENTERPRISE_KEY"
    assert [a.installation for a in ferretti.archetypes] == ["required", "auto_install"]
    assert ferretti.zero_retention is not None
    assert ferretti.zero_retention.attested_at == dt.date(2026, 11, 20)


def test_claude_api_needs_one_key_per_mapped_workspace() -> None:
    missing = yaml.safe_load(FERRETTI)  # wrkspc_ferretti_data (of the sub-tenant) has no key
    assert _problems(missing) == [
        "t.yaml: tenants[0].targets.claude-api.workspace_keys: no API key for workspace "
        "'wrkspc_ferretti_data' (mapped at tenants[0].sub_tenants[0].workspaces[0]): the "
        "claude-api target publishes into every mapped workspace; add "
        "`wrkspc_ferretti_data: env:NAME`"
    ]
    extra = _data()
    extra["tenants"][0]["targets"]["claude-api"]["workspace_keys"]["wrkspc_nope"] = "env:X"
    assert _problems(extra) == [
        "t.yaml: tenants[0].targets.claude-api.workspace_keys.wrkspc_nope: workspace is not "
        "mapped to this tenant or its sub-tenants: map it under `workspaces:` or remove its key"
    ]


def test_targets_problems_name_file_and_path() -> None:
    data = _data()
    targets = data["tenants"][0]["targets"]
    targets["claude-api"]["org_id"] = "org_other"
    targets["claude-enterprise"]["admin_key"] = "sk-ant-api01-pasted-key"
    targets["claude-api"]["workspace_keys"]["wrkspc_ferretti_apps"] = "sk-ant-api03-pasted"
    data["tenants"][0]["archetypes"][1]["installation"] = "always"
    data["tenants"][0]["zero_retention"]["attested_at"] = "last week"
    data["tenants"][0]["sub_tenants"][0]["targets"] = {}
    problems = _problems(data)
    assert any(
        p.startswith(
            "t.yaml: tenants[0].targets.claude-enterprise.admin_key: an admin key was "
            "given by value"
        )
        for p in problems
    ), problems
    assert any(
        p.startswith("t.yaml: tenants[0].targets.claude-api.workspace_keys.wrkspc_ferretti_apps:")
        for p in problems
    ), problems
    assert any(
        p.startswith("t.yaml: tenants[0].archetypes[1].installation: Input should be 'available'")
        for p in problems
    ), problems
    assert any(p.startswith("t.yaml: tenants[0].zero_retention.attested_at:") for p in problems)
    assert (
        "t.yaml: tenants[0].sub_tenants[0].targets: not allowed in a sub-tenant: a sub-tenant "
        "uses its root tenant's targets"
    ) in problems
    assert all("pasted" not in p for p in problems)  # never echo a key

    data = _data()
    data["tenants"][0]["targets"]["claude-api"]["org_id"] = "org_other"
    assert _problems(data) == [
        "t.yaml: tenants[0].targets.claude-api.org_id: organisation 'org_other' differs from "
        "'org_ferretti' at tenants[0].targets.claude-enterprise.org_id: a root tenant's targets "
        "are in one organisation"
    ]
    data = _data()
    data["tenants"][0]["targets"]["claude-enterprize"] = data["tenants"][0]["targets"].pop(
        "claude-enterprise"
    )
    assert _problems(data) == [
        "t.yaml: tenants[0].targets.claude-enterprize: unknown key (allowed here: "
        "org-skills, claude-enterprise, claude-api); did you mean 'claude-enterprise'?"
    ]


def test_each_key_family_only_where_it_belongs(monkeypatch: pytest.MonkeyPatch) -> None:
    console = "sk-ant-admin01-console-CANARY-0000000000000000000000000000000000000000"
    enterprise = "sk-ant-api01-enterprise-CANARY-00000000000000000000000000000000000000"
    monkeypatch.setenv("K_CONSOLE", console)
    monkeypatch.setenv("K_ENTERPRISE", enterprise)
    assert resolve_key("env:K_ENTERPRISE", ENTERPRISE_ADMIN).reveal() == enterprise
    with pytest.raises(KeyReferenceError) as wrong:
        resolve_key("env:K_CONSOLE", ENTERPRISE_ADMIN)
    assert str(wrong.value).startswith(
        "the key at 'env:K_CONSOLE' (ending …0000) is an Anthropic admin key, but a Claude "
        "Enterprise admin key is needed here (it begins 'sk-ant-api01-'): make one in claude.ai"
    )
    with pytest.raises(
        KeyReferenceError,
        match="is a Claude Enterprise admin key, but a workspace API key is needed",
    ) as api:
        resolve_key("env:K_ENTERPRISE", WORKSPACE_API_KEY)
    with pytest.raises(
        KeyReferenceError,
        match="is a Claude Enterprise admin key, but an Anthropic admin key is needed",
    ):
        resolve_key("env:K_ENTERPRISE")
    assert console not in str(wrong.value) and enterprise not in str(api.value)
    conn = TenantConnection("f", "f", "org_ferretti", "env:K_CONSOLE", target="claude-enterprise")
    with pytest.raises(ConnectionKeyError) as failed:
        connection_key(conn)
    assert str(failed.value).startswith(
        "organisation org_ferretti (tenant 'f'): claude-enterprise admin key: the key at"
    )


def _catalog(session: Session) -> None:
    session.add(
        CatalogSkill(
            skill_id="prd-review", version="1", title="PRD", ir={}, ir_hash="sha256:" + "b" * 64
        )
    )
    session.commit()


def _apply(session: Session, data: dict[str, Any]) -> list[str]:
    config = parse_tenants(yaml.safe_dump(data), "t.yaml")
    changes = [str(c) for c in apply_tenants(session, config, source="t.yaml")]
    session.commit()
    return changes


def test_apply_stores_targets_attestation_and_preferences(session: Session) -> None:
    _catalog(session)
    changes = _apply(session, _data())
    assert (
        "+ target ferretti claude-api: org org_ferretti, keys env:FERRETTI_APPS_KEY, "
        "env:FERRETTI_DATA_KEY"
    ) in changes
    assert (
        "+ zero-retention attestation ferretti by Anna Ferretti <anna@ferretti.example> on "
        "2026-11-20"
    ) in changes
    assert _apply(session, _data()) == []
    rows = {t.kind: t for t in session.scalars(select(TenantTarget))}
    assert rows["claude-enterprise"].admin_key_ref == "env:FERRETTI_ENTERPRISE_KEY"
    assert rows["claude-api"].workspace_key_refs == {
        "wrkspc_ferretti_apps": "env:FERRETTI_APPS_KEY",
        "wrkspc_ferretti_data": "env:FERRETTI_DATA_KEY",
    }
    prefs = dict(session.execute(select(Archetype.slug, Archetype.installation_preference)).all())
    assert prefs == {"engineer": "required", "designer": "auto_install", "analyst": "auto_install"}

    targets = tenant_targets(session, "ferretti-data")
    assert [c.target_key for c in targets] == [
        "claude-enterprise",
        "claude-api:wrkspc_ferretti_apps",
        "claude-api:wrkspc_ferretti_data",
    ]
    assert {c.tenant_slug for c in targets} == {"ferretti-data"}
    assert targets[2].admin_key_ref == "env:FERRETTI_DATA_KEY"
    assert str(targets[0].zero_retention) == (
        "attested by Anna Ferretti <anna@ferretti.example> on 2026-11-20 (tenants file)"
    )

    data = _data()
    del data["tenants"][0]["targets"]["claude-api"]
    del data["tenants"][0]["zero_retention"]
    data["tenants"][0]["archetypes"][0]["installation"] = "available"
    assert sorted(_apply(session, data)) == [
        "- target ferretti claude-api",
        "- zero-retention attestation ferretti",
        "~ archetype ferretti/engineer installation: required -> available",
    ]
    assert session.scalar(select(ZeroRetentionAttestation)) is None


def test_the_database_refuses_keys_by_value(session: Session) -> None:
    tenant = Tenant(slug="ferretti", display_name="F")
    session.add(tenant)
    session.commit()
    for bad in (
        TenantTarget(
            tenant_id=tenant.id, kind="claude-enterprise", org_id="o", admin_key_ref="sk-ant-api01"
        ),
        TenantTarget(
            tenant_id=tenant.id,
            kind="claude-api",
            org_id="o",
            workspace_key_refs={"wrkspc_a": "env:OK", "wrkspc_b": "sk-ant-api03-x"},
        ),
        TenantTarget(tenant_id=tenant.id, kind="Some Where", org_id="o"),  # not a kind's name
    ):
        session.add(bad)
        with pytest.raises(IntegrityError, match="ck_tenant_target_"):
            session.flush()
        session.rollback()
