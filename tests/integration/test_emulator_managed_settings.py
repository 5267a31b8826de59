"""The emulator's Claude Code managed-settings API (beta
`ce-claude-code-managed-settings-2026-10-06`), driven by the official `anthropic` SDK over
loopback: its types parse every answer and its typed exceptions come out of every error."""

from __future__ import annotations

import anthropic
import httpx2
import pytest
from anthropic.types.beta.organization.claude_code import BetaRBACGroupManagedSettingsNotFoundError

from claresia_sync.emulator import EmulatorServer
from tests.fixtures.emulator import DAINESE_KEY
from tests.fixtures.real_api import DESIGNERS, ENGINEERS, ENTERPRISE_KEY, READONLY_KEY, client

ROOT = "/v1/organizations/claude_code/managed_settings"


def test_group_documents_are_stored_replaced_listed_and_deleted(emulator: EmulatorServer) -> None:
    api = client(emulator).beta.organization.claude_code.managed_settings
    config = api.configuration.retrieve()
    assert config.mode.type == "organization" and config.rbac_group_order == []
    with pytest.raises(BetaRBACGroupManagedSettingsNotFoundError):
        api.rbac_groups.retrieve(ENGINEERS)

    doc = {"env": {"FOO": "1"}, "permissions": {"deny": ["Bash(rm:*)"]}}
    made = api.rbac_groups.set(ENGINEERS, settings=doc)
    assert made.settings == doc and made.rbac_group_status.type == "active"
    api.rbac_groups.set(DESIGNERS, settings={"model": "claude-sonnet-4-5"})
    api.rbac_groups.set(ENGINEERS, settings={"env": {"FOO": "2"}})  # replaces, keeps its place
    assert api.rbac_groups.retrieve(ENGINEERS).settings == {"env": {"FOO": "2"}}
    after = api.configuration.retrieve()
    assert after.rbac_group_order == [ENGINEERS, DESIGNERS]
    assert after.rbac_group_order_version != config.rbac_group_order_version
    assert [g.rbac_group_id for g in api.rbac_groups.list(limit=1)] == [ENGINEERS, DESIGNERS]

    moved = api.configuration.update(
        mode={"type": "rbac_groups"},
        rbac_group_order=[DESIGNERS, ENGINEERS],
        rbac_group_order_version=after.rbac_group_order_version,
    )
    assert moved.mode.type == "rbac_groups" and moved.rbac_group_order == [DESIGNERS, ENGINEERS]
    with pytest.raises(anthropic.ConflictError):  # based on an old read
        api.configuration.update(
            rbac_group_order=[ENGINEERS, DESIGNERS],
            rbac_group_order_version=after.rbac_group_order_version,
        )

    gone = api.rbac_groups.delete(ENGINEERS)
    assert gone.type == "claude_code_rbac_group_managed_settings_deleted"
    assert api.configuration.retrieve().rbac_group_order == [DESIGNERS]
    with pytest.raises(BetaRBACGroupManagedSettingsNotFoundError):
        api.rbac_groups.delete(ENGINEERS)
    assert api.rbac_group_default.retrieve().updated_at is None
    assert api.rbac_group_default.update(settings={"env": {"X": "1"}}).settings == {
        "env": {"X": "1"}
    }
    assert api.rbac_group_default.update(settings=None).settings is None
    with pytest.raises(anthropic.NotFoundError, match="rbac_group_nope"):
        api.rbac_groups.set("rbac_group_nope", settings={})
    with pytest.raises(anthropic.BadRequestError, match="JSON object"):
        api.rbac_groups.set(ENGINEERS, settings="x")  # type: ignore[arg-type]


def test_beta_header_enterprise_scope_and_enablement(emulator: EmulatorServer) -> None:
    answer = httpx2.get(
        f"{emulator.base_url}{ROOT}/configuration",
        headers={"x-api-key": ENTERPRISE_KEY, "anthropic-version": "2023-06-01"},
    )
    assert answer.status_code == 404
    assert "ce-claude-code-managed-settings-2026-10-06" in answer.json()["error"]["message"]
    with pytest.raises(anthropic.NotFoundError, match="not a Claude Enterprise organization"):
        client(
            emulator, DAINESE_KEY
        ).beta.organization.claude_code.managed_settings.configuration.retrieve()
    readonly = client(emulator, READONLY_KEY).beta.organization.claude_code.managed_settings
    with pytest.raises(anthropic.PermissionDeniedError, match="read:claude_code_managed_settings"):
        readonly.configuration.retrieve()
    emulator.state.add_admin_key(
        "org_ferretti",
        "sk-ant-api01-ferretti-MSREAD-0000000000000000000000000000000000000000000000",
        scopes=["read:claude_code_managed_settings"],
    )
    reader = client(
        emulator, "sk-ant-api01-ferretti-MSREAD-0000000000000000000000000000000000000000000000"
    ).beta.organization.claude_code.managed_settings
    assert reader.configuration.retrieve().rbac_group_order == []
    with pytest.raises(anthropic.PermissionDeniedError, match="write:claude_code_managed_settings"):
        reader.rbac_groups.set(ENGINEERS, settings={})
    emulator.state.orgs["org_ferretti"].claude_code_settings.enabled = False
    with pytest.raises(anthropic.NotFoundError, match="not enabled for the beta"):
        client(emulator).beta.organization.claude_code.managed_settings.configuration.retrieve()
