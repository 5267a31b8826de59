"""The emulator's Plugins API and rbac groups, driven by the official `anthropic` SDK over loopback:
if the SDK's own types parse every answer and its typed exceptions come out of every error, the
emulator answers as the real API does."""

from __future__ import annotations

import io
import threading
import zipfile
from collections.abc import Iterator

import anthropic
import httpx2
import pytest
from anthropic.types.beta.organization import (
    BetaPluginNameTakenError,
    BetaRegistrationPendingError,
    BetaScanFailedError,
    BetaScanPendingError,
    BetaSkillNameTakenError,
)

from claresia_sync.emulator import EmulatorServer
from tests.fixtures.emulator import DAINESE_KEY
from tests.fixtures.real_api import (
    DESIGNERS,
    ENGINEERS,
    ENTERPRISE_KEY,
    READONLY_KEY,
    client,
    picker,
    plugin_files,
)


@pytest.fixture
def sdk(emulator: EmulatorServer) -> Iterator[anthropic.Anthropic]:
    with client(emulator) as c:
        yield c


def test_create_get_version_download_delete(sdk: anthropic.Anthropic) -> None:
    plugins = sdk.beta.organization.plugins
    created = plugins.create(files=plugin_files(), release_notes="first")
    assert created.name == "claresia-ferretti-pr-review" and created.manifest_version == "1.2.0"
    assert created.owner.type == "organization" and created.created_by is not None
    assert (
        created.created_by.type == "api_actor" and ENTERPRISE_KEY not in created.model_dump_json()
    )
    assert [c.name for c in created.components or []] == ["pr-review"]
    assert created.served_version_id == created.latest_version_id
    assert created.organization_installation_preference_inherited is True

    second = plugins.versions.create(created.id, files=plugin_files(), release_notes="second")
    assert second.plugin_id == created.id and second.release_notes == "second"
    again = plugins.retrieve(created.id)
    assert again.latest_version_id == second.id == again.served_version_id
    versions = list(plugins.versions.list(created.id))
    assert [v.id for v in versions] == [second.id, created.latest_version_id]  # newest first
    assert plugins.versions.retrieve("latest", plugin_id=created.id).id == second.id

    archive = plugins.versions.download(created.latest_version_id, plugin_id=created.id)
    assert archive.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(archive.read())) as z:
        assert {n: z.read(n) for n in z.namelist()} == {p: c for p, c, _ in plugin_files()}

    deleted = plugins.delete(created.id)
    assert (deleted.type, deleted.id) == ("plugin_deleted", created.id)
    with pytest.raises(anthropic.NotFoundError):
        plugins.retrieve(created.id)


def test_list_is_newest_first_and_pages_with_next_page(sdk: anthropic.Anthropic) -> None:
    plugins = sdk.beta.organization.plugins
    ids = [plugins.create(files=plugin_files(f"claresia-ferretti-s{i}")).id for i in range(5)]
    first = plugins.list(limit=2)
    assert [p.id for p in first.data] == ids[:2:-1][:2] and first.next_page
    assert [p.id for p in plugins.list(limit=2)] == ids[::-1]  # auto-paging follows next_page
    assert plugins.list(owner_type="user").data == []
    with pytest.raises(anthropic.BadRequestError, match="limit"):
        plugins.list(limit=101)


def test_installation_settings(sdk: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    plugins = sdk.beta.organization.plugins
    plugin = plugins.create(files=plugin_files())
    settings = plugins.installation_settings
    org = settings.set("organization", plugin_id=plugin.id, installation_preference="not_available")
    assert org.target.type == "organization" and org.installation_preference == "not_available"
    group = settings.set(ENGINEERS, plugin_id=plugin.id, installation_preference="auto_install")
    assert group.target.type == "rbac_group" and group.target.rbac_group_id == ENGINEERS
    listed = list(settings.list(plugin.id))
    assert [s.target.type for s in listed] == ["rbac_group", "organization"]  # newest first
    assert [s.target.type for s in settings.list(plugin.id, target_type="organization")] == [
        "organization"
    ]
    assert plugins.retrieve(plugin.id).organization_installation_preference == "not_available"

    assert picker(emulator, "user_ferretti_anna") == ["pr-review"]  # engineers: auto_install
    assert picker(emulator, "user_ferretti_chiara") == []  # designers: not_available
    settings.set(DESIGNERS, plugin_id=plugin.id, installation_preference="not_available")
    assert picker(emulator, "user_ferretti_bruno") == ["pr-review"]  # the strongest of his groups
    removed = settings.remove(ENGINEERS, plugin_id=plugin.id)
    assert removed.type == "plugin_installation_setting_deleted"
    assert picker(emulator, "user_ferretti_anna") == []
    with pytest.raises(anthropic.NotFoundError):
        settings.remove(ENGINEERS, plugin_id=plugin.id)
    with pytest.raises(anthropic.NotFoundError) as unknown:
        settings.set("rbac_group_nope", plugin_id=plugin.id, installation_preference="available")
    assert unknown.value.error_code == "rbac_group_not_found"


def test_plugin_name_taken(sdk: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    plugins = sdk.beta.organization.plugins
    first = plugins.create(files=plugin_files())
    with pytest.raises(BetaPluginNameTakenError) as taken:
        plugins.create(files=plugin_files())
    assert taken.value.status_code == 409 and taken.value.details.plugin_id == first.id
    assert taken.value.response.headers["x-should-retry"] == "false"
    # As a fault: an administrator's plugin takes the name first (created_by a user).
    emulator.set_faults(script=["plugin_name_taken"])
    with pytest.raises(BetaPluginNameTakenError) as foreign:
        plugins.create(files=plugin_files("claresia-ferretti-other"))
    holder = plugins.retrieve(foreign.value.details.plugin_id)
    assert holder.name == "claresia-ferretti-other" and holder.created_by is not None
    assert holder.created_by.type == "user_actor"


def test_skill_name_taken(sdk: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    plugins = sdk.beta.organization.plugins
    with pytest.raises(BetaSkillNameTakenError) as seeded:  # the seed's organisation skill
        plugins.create(files=plugin_files("claresia-ferretti-x", skill="expense-report"))
    assert seeded.value.details.skill_name == "expense-report"
    assert list(plugins.list()) == []  # nothing was stored
    created = plugins.create(files=plugin_files())
    emulator.set_faults(script=["skill_name_taken"])
    with pytest.raises(BetaSkillNameTakenError) as fault:
        plugins.versions.create(created.id, files=plugin_files())
    assert fault.value.status_code == 409 and fault.value.details.skill_name == "pr-review"


def test_registration_pending_is_completed_by_a_version(
    sdk: anthropic.Anthropic, emulator: EmulatorServer
) -> None:
    plugins = sdk.beta.organization.plugins
    emulator.set_faults(script=["registration_pending"])
    with pytest.raises(BetaRegistrationPendingError) as pending:
        plugins.create(files=plugin_files())
    details = pending.value.details
    assert pending.value.status_code == 503
    assert pending.value.response.headers["x-should-retry"] == "false"
    stored = plugins.retrieve(details.plugin_id)
    assert stored.latest_version_id == details.plugin_version_id
    plugins.installation_settings.set(
        "organization", plugin_id=stored.id, installation_preference="available"
    )
    assert picker(emulator, "user_ferretti_guest", "plugin") == []  # stored, not yet usable
    with pytest.raises(BetaPluginNameTakenError):  # a retried create is what must not happen
        plugins.create(files=plugin_files())
    plugins.versions.create(stored.id, files=plugin_files())
    assert picker(emulator, "user_ferretti_guest", "plugin") == ["claresia-ferretti-pr-review"]


def test_scan_states(sdk: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    plugins = sdk.beta.organization.plugins
    plugin = plugins.create(files=plugin_files())
    emulator.set_faults(script=["scan_pending", "scan_failed"])
    pending = plugins.versions.create(plugin.id, files=plugin_files())
    assert pending.content_scan is not None and pending.content_scan.status == "processing"
    failed = plugins.versions.create(plugin.id, files=plugin_files())
    assert failed.content_scan is not None and failed.content_scan.assessment == "fail"
    now = plugins.retrieve(plugin.id)
    assert now.latest_version_id == failed.id and now.served_version_id == plugin.latest_version_id
    with pytest.raises(BetaScanPendingError) as scanning:
        plugins.update(plugin.id, served_version_id=pending.id)
    assert scanning.value.details.plugin_version_id == pending.id
    with pytest.raises(BetaScanFailedError) as refused:
        plugins.update(plugin.id, served_version_id=failed.id)
    assert refused.value.status_code == 400
    pinned = plugins.update(plugin.id, served_version_id=plugin.latest_version_id)
    assert pinned.served_version_pinned is True


def test_beta_header_enterprise_and_scopes(emulator: EmulatorServer) -> None:
    no_beta = client(emulator).with_options(default_headers={"anthropic-beta": "other-beta"})
    with pytest.raises(anthropic.NotFoundError, match="ce-plugins-2026-09-01"):
        no_beta.beta.organization.plugins.list(extra_headers={"anthropic-beta": "other-beta"})
    with pytest.raises(anthropic.NotFoundError, match="not a Claude Enterprise organization"):
        client(emulator, DAINESE_KEY).beta.organization.plugins.list()
    readonly = client(emulator, READONLY_KEY).beta.organization.plugins
    assert readonly.list().data == []
    with pytest.raises(anthropic.PermissionDeniedError, match="write:plugins"):
        readonly.create(files=plugin_files())
    with pytest.raises(anthropic.AuthenticationError):
        client(emulator, "sk-ant-api01-unknown-0000000000").beta.organization.plugins.list()


def test_bad_uploads_name_the_problem(sdk: anthropic.Anthropic) -> None:
    plugins = sdk.beta.organization.plugins
    with pytest.raises(anthropic.BadRequestError, match=r"plugin\.json is missing"):
        plugins.create(files=plugin_files()[1:])
    bad_name = [(".claude-plugin/plugin.json", b'{"name": "Bad Name"}', "application/json")]
    with pytest.raises(anthropic.BadRequestError, match="lowercase"):
        plugins.create(files=bad_name)
    wrong_md = plugin_files()
    wrong_md[1] = ("skills/other/SKILL.md", wrong_md[1][1], "text/markdown")
    with pytest.raises(anthropic.BadRequestError, match=r"skills/other/SKILL\.md"):
        plugins.create(files=wrong_md)
    created = plugins.create(files=plugin_files())
    with pytest.raises(anthropic.BadRequestError, match="must stay the plugin's name"):
        plugins.versions.create(created.id, files=plugin_files("claresia-ferretti-renamed"))


def test_concurrent_setting_writes_answer_503_should_retry(emulator: EmulatorServer) -> None:
    plugin = client(emulator).beta.organization.plugins.create(files=plugin_files())
    emulator.set_faults(settings_write_ms=300)
    outcomes: list[object] = []

    def write(target: str) -> None:
        try:
            outcomes.append(
                client(emulator).beta.organization.plugins.installation_settings.set(
                    target, plugin_id=plugin.id, installation_preference="available"
                )
            )
        except anthropic.APIStatusError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=write, args=(t,)) for t in ("organization", ENGINEERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    busy = [o for o in outcomes if isinstance(o, anthropic.APIStatusError)]
    assert len(busy) == 1 and busy[0].status_code == 503
    assert busy[0].response.headers["x-should-retry"] == "true"
    # The SDK's own retry obeys x-should-retry: with retries on, the same write goes through.
    emulator.set_faults(script=["settings_busy"])
    retrying = client(emulator, max_retries=2).beta.organization.plugins.installation_settings
    done = retrying.set(DESIGNERS, plugin_id=plugin.id, installation_preference="required")
    assert done.installation_preference == "required"
    route = "/v1/organizations/plugins/{plugin_id}/installation_settings/{target}"
    assert emulator.stats.count("POST", route, 503) == 2


def test_rbac_groups_members_and_me(sdk: anthropic.Anthropic, emulator: EmulatorServer) -> None:
    me = sdk.organization.retrieve()
    assert me.model_dump() == {
        "id": "org_ferretti",
        "type": "organization",
        "name": "Ferretti Group",
    }
    first = sdk.organization.rbac_groups.list(limit=2)
    assert len(first.data) == 2 and first.next_page
    assert [g.name for g in sdk.organization.rbac_groups.list(limit=2)] == [
        "designers",
        "engineers",
        "sales",
    ]
    members = list(sdk.organization.rbac_groups.members.list(ENGINEERS, limit=1))
    assert [m.user_id for m in members] == ["user_ferretti_anna", "user_ferretti_bruno"]
    assert members[0].email == "anna@ferretti.example"
    with pytest.raises(anthropic.NotFoundError):
        sdk.organization.rbac_groups.retrieve("rbac_group_nope")
    # Section 3 keys keep section 3's answers on the same paths.
    old = httpx2.get(
        f"{emulator.base_url}/v1/organizations/me",
        headers={"x-api-key": DAINESE_KEY, "anthropic-version": "2023-06-01"},
    ).json()
    assert old["workspace_count"] == 3 and old["zero_data_retention"] is True
