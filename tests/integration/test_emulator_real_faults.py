"""Faults of the real endpoints and the Claude Enterprise seed: error codes as script steps (they
wait for a request they apply to) and as rates, corrupt modes on a zip download, seed checks."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest
from anthropic.types.beta.organization import BetaRegistrationPendingError

from claresia_sync.emulator import DEMO_SEED, EmulatorServer, EmulatorState, SeedError, load_seed
from tests.fixtures.real_api import ENTERPRISE_KEY, client, plugin_files


def test_a_code_step_waits_for_a_request_it_applies_to(emulator: EmulatorServer) -> None:
    plugins = client(emulator).beta.organization.plugins
    plugin = plugins.create(files=plugin_files())
    emulator.set_faults(script=["scan_failed", 503])
    assert plugins.retrieve(plugin.id).id == plugin.id  # a GET: the code step stays queued
    version = plugins.versions.create(plugin.id, files=plugin_files())
    assert version.content_scan is not None and version.content_scan.assessment == "fail"
    with pytest.raises(anthropic.InternalServerError):  # then the next step
        plugins.retrieve(plugin.id)


def test_code_rates_apply_only_where_they_can(emulator: EmulatorServer) -> None:
    plugins = client(emulator).beta.organization.plugins
    emulator.set_faults(code_rates={"registration_pending": 1.0}, seed=1)
    with pytest.raises(BetaRegistrationPendingError):
        plugins.create(files=plugin_files())
    assert len(plugins.list().data) == 1  # lists are not uploads: answered normally


def test_code_headers_replace_the_headers_of_an_error_codes_answer(
    emulator: EmulatorServer,
) -> None:
    plugins = client(emulator).beta.organization.plugins
    emulator.set_faults(
        script=["registration_pending", "registration_pending"],
        code_headers={"registration_pending": {"x-should-retry": "true", "retry-after": "0"}},
    )
    with pytest.raises(BetaRegistrationPendingError) as pending:
        plugins.create(files=plugin_files())
    headers = pending.value.response.headers
    assert headers["x-should-retry"] == "true" and headers["retry-after"] == "0"
    emulator.set_faults(script=["registration_pending"])  # by default: x-should-retry false
    with pytest.raises(BetaRegistrationPendingError) as plain:
        plugins.versions.create(
            pending.value.body["error"]["details"]["plugin_id"],  # type: ignore[index]
            files=plugin_files(),
        )
    assert plain.value.response.headers["x-should-retry"] == "false"
    assert "retry-after" not in plain.value.response.headers


def test_a_lost_answer_was_applied_and_its_repeat_finds_it_done(emulator: EmulatorServer) -> None:
    plugins = client(emulator).beta.organization.plugins
    plugin = plugins.create(files=plugin_files())
    settings = plugins.installation_settings
    settings.set("organization", plugin_id=plugin.id, installation_preference="required")
    emulator.set_faults(script=["lost"])
    with pytest.raises(anthropic.APIStatusError) as lost:
        settings.remove("organization", plugin_id=plugin.id)
    assert lost.value.status_code == 504
    assert list(settings.list(plugin.id)) == []  # it happened
    with pytest.raises(anthropic.NotFoundError):  # the repeat: no setting of its own
        settings.remove("organization", plugin_id=plugin.id)


@pytest.mark.parametrize(
    ("code", "status", "assessment"),
    [("scan_errored", "errored", None), ("scan_unknown", "completed", "unknown")],
)
def test_a_scan_without_a_pass_is_stored_not_served(
    emulator: EmulatorServer, code: str, status: str, assessment: str | None
) -> None:
    plugins = client(emulator).beta.organization.plugins
    plugin = plugins.create(files=plugin_files())
    emulator.set_faults(script=[code])
    version = plugins.versions.create(plugin.id, files=plugin_files())
    scan = version.content_scan
    assert scan is not None and (scan.status, scan.assessment) == (status, assessment)
    assert plugins.retrieve(plugin.id).served_version_id == plugin.latest_version_id
    with pytest.raises(anthropic.BadRequestError) as refused:  # the SDK: refused service
        plugins.update(plugin.id, served_version_id=version.id)
    assert refused.value.error_code == "scan_failed"


def test_a_429_can_say_retry_after_ms_too(emulator: EmulatorServer) -> None:
    plugins = client(emulator).beta.organization.plugins
    emulator.set_faults(script=[429, 429], retry_after_s=3, retry_after_ms=250)
    with pytest.raises(anthropic.RateLimitError) as limited:
        plugins.list()
    headers = limited.value.response.headers
    assert (headers["retry-after"], headers["retry-after-ms"]) == ("3", "250")
    emulator.set_faults(script=[429], retry_after_s=3)
    with pytest.raises(anthropic.RateLimitError) as plain:
        plugins.list()
    assert "retry-after-ms" not in plain.value.response.headers


def test_a_zip_download_is_corrupted_only_as_bytes(emulator: EmulatorServer) -> None:
    plugins = client(emulator).beta.organization.plugins
    plugin = plugins.create(files=plugin_files())
    whole = plugins.versions.download(plugin.latest_version_id, plugin_id=plugin.id).read()
    emulator.set_faults(script=["corrupt:wrong_types", "corrupt:truncated"])
    same = plugins.versions.download(plugin.latest_version_id, plugin_id=plugin.id).read()
    cut = plugins.versions.download(plugin.latest_version_id, plugin_id=plugin.id)
    assert same == whole and cut.read() == whole[: len(whole) // 2]
    assert cut.headers["content-type"] == "application/zip"


def test_demo_seed_has_a_claude_enterprise_organisation() -> None:
    state = EmulatorState(DEMO_SEED)
    org = state.orgs["org_ferretti"]
    assert org.claude_enterprise and org.plugins is not None
    assert not state.orgs["org_dainese"].claude_enterprise
    key = state.key(ENTERPRISE_KEY)
    assert key is not None and key.family == "enterprise_admin"
    assert key.scopes == {
        "write:plugins",
        "read:plugins",
        "read:rbac_groups",
        "read:analytics",
        "read:compliance_activities",
        "read:claude_code_managed_settings",
        "write:claude_code_managed_settings",
    }
    workspace_keys = [k for k in state.keys.values() if k.family == "workspace"]
    assert {(k.org_id, k.workspace) for k in workspace_keys} == {
        ("org_ferretti", "wrkspc_ferretti_apps"),
        ("org_ferretti", "wrkspc_ferretti_data"),
        ("org_ferretti", None),
        ("org_vespucci", "wrkspc_vespucci_support"),  # a Claude API organisation's (claude-api)
    }
    assert not state.orgs["org_vespucci"].claude_enterprise
    assert all(k.key.startswith("sk-ant-api03-") for k in workspace_keys)
    for group in org.rbac_groups:  # every group has a member to check the picker with
        assert any(group in u.rbac_groups for u in org.users.values())


def _org(**extra: Any) -> dict[str, Any]:
    return {"organizations": [{"id": "org_t", "name": "T", "workspaces": [], **extra}]}


@pytest.mark.parametrize(
    ("seed", "fragment"),
    [
        (_org(admin_keys=[{"key": "sk-ant-api01-t-000000000000"}]), "claude_enterprise"),
        (
            _org(
                claude_enterprise=True,
                admin_keys=[{"key": "sk-ant-api01-t-000000000000", "scopes": ["skills:read"]}],
            ),
            "scopes",
        ),
        (
            _org(api_keys=[{"key": "sk-ant-api03-t-00000000000", "workspace": "wrkspc_x"}]),
            "wrkspc_x",
        ),
        (
            _org(api_keys=[{"key": "sk-ant-admin01-t-0000000000", "workspace": None}]),
            "sk-ant-api03-",
        ),
        (_org(plugin_default_preference="hidden"), "plugin_default_preference"),
    ],
)
def test_bad_real_seed_names_the_problem(seed: dict[str, Any], fragment: str) -> None:
    with pytest.raises(SeedError) as refused:
        load_seed(seed)
    assert fragment in str(refused.value)
