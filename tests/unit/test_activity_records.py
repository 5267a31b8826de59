"""Each activity type of the Compliance feed read by the fields Anthropic's reference documents
for it (docs/real-api.md section 3), written out here by hand from that reference, not made by
the emulator: a plugin activity names `plugin_id` and `plugin_name`; an installation-preference
activity names the plugin only by name (no `plugin_id`, no `target`); a Skills API version
activity names only `skill_id` and `version`; actors carry `ip_address` and `user_agent`.
Our own writes are told apart by the key's id, not by the actor's type."""

from __future__ import annotations

from typing import Any

import pytest

from claresia_sync.emulator.activity import COMMON, SHAPES
from claresia_sync.telemetry.activity import (
    ACTIVITY_TYPES,
    READINGS,
    Published,
    _Row,
    normalise_activity,
)
from claresia_sync.telemetry.analytics import UsageContext
from claresia_sync.telemetry.normalise import AttributionContext, SkillRef

ORG = "org_01Wv6QeBcDfGhJkLmNpQrSt8"
OURS, THEIRS = "apikey_01ours", "apikey_01theirs"
PLUGIN = "claresia-acme-prd-review"
API = {"type": "api_actor", "api_key_id": OURS, "ip_address": "192.0.2.1", "user_agent": "x/1"}
PERSON = {
    "type": "user_actor",
    "email_address": "anna@acme.example",
    "user_id": "user_01TuVwXyZaBcDeFgH2JkLmN4",
    "ip_address": "192.0.2.34",
    "user_agent": "Mozilla/5.0",
}


def _ctx() -> UsageContext:
    skills = AttributionContext(
        org_id=ORG,
        workspaces={},
        published={PLUGIN: SkillRef("prd-review", "plugin_01A", "acme-eng")},
        tenant_slugs=frozenset({"acme", "acme-eng"}),
    )
    return UsageContext(skills, parents={"acme-eng": "acme", "acme": None})


def _published() -> Published:
    return Published(
        names={"plugin_01A": PLUGIN, "skill_01B": PLUGIN},
        ids={PLUGIN: "plugin_01A"},
        versions={"plugin_01A": "pluginver_01C", "skill_01B": "1759178010641129"},
    )


def _record(kind: str, actor: dict[str, Any], **own: Any) -> dict[str, Any]:
    return {
        "id": "activity_01XyDMpzjS89pFZXqSFUBDr6",
        "created_at": "2026-04-10T08:09:10Z",
        "organization_id": ORG,
        "organization_uuid": "abcdef01-2345-6789-abcd-ef0123456789",
        "actor": actor,
        "type": kind,
        **own,
    }


def _read(raw: dict[str, Any], keys: set[str] | None = None) -> _Row:
    row = normalise_activity(raw, ORG, _ctx(), _published(), {OURS} if keys is None else keys)
    assert isinstance(row, _Row), row
    return row


def test_the_emulator_and_the_reader_know_the_same_documented_types() -> None:
    assert set(SHAPES) == set(READINGS) == set(ACTIVITY_TYPES)
    assert SHAPES["plugin_installation_preference_updated"] == (
        "marketplace_id",
        "plugin_name",
        "action",
        "group_id",
        "group_name",
        "installation_preference",
    )
    assert SHAPES["platform_skill_version_created"] == ("skill_id", "version")
    assert COMMON == ("id", "created_at", "organization_id", "organization_uuid", "actor", "type")


@pytest.mark.parametrize("change", ["created", "updated", "replaced", "deleted"])
def test_plugin_activities_name_the_plugin_by_id_and_name(change: str) -> None:
    kind = f"claude_plugin_{change}"
    row = _read(_record(kind, PERSON, plugin_id="plugin_01A", plugin_name=PLUGIN))
    v = row.values
    assert (v["subject_id"], v["subject_name"], v["tenant_slug"], v["skill_id"]) == (
        "plugin_01A",
        PLUGIN,
        "acme-eng",
        "prd-review",
    )
    assert (v["actor_type"], v["actor_id"]) == ("user_actor", PERSON["user_id"])
    assert row.drift_tenant == (None if kind == "claude_plugin_created" else "acme")


@pytest.mark.parametrize("kind", ["claude_skill_deleted", "claude_skill_disabled"])
def test_skill_activities_name_the_skill_by_id_and_name(kind: str) -> None:
    row = _read(_record(kind, PERSON, skill_id="skill_01Z", skill_name=PLUGIN))
    assert (row.values["subject_id"], row.values["subject_name"]) == ("skill_01Z", PLUGIN)
    assert row.drift_tenant == "acme"


def test_a_preference_activity_names_the_plugin_only_by_name() -> None:
    raw = _record(
        "plugin_installation_preference_updated",
        {**API, "api_key_id": THEIRS},
        marketplace_id="marketplace_01M",
        plugin_name=PLUGIN,
        action="updated",
        group_id=None,
        group_name=None,
        installation_preference="available",
    )
    row = _read(raw)
    # the plugin id comes from what we published under that name
    assert (row.values["subject_id"], row.values["subject_name"]) == ("plugin_01A", PLUGIN)
    assert (row.values["actor_type"], row.values["actor_id"]) == ("api_actor", THEIRS)
    assert row.drift_tenant == "acme"  # another admin key's write
    cleared = {**raw, "action": "deleted", "installation_preference": None, "actor": API}
    cleared |= {"group_id": "rbac_group_01G", "group_name": "Engineers"}
    assert _read(cleared).drift_tenant is None  # our own key's


def test_a_skills_api_version_activity_names_only_the_skill_id_and_version() -> None:
    mine = _record(
        "platform_skill_version_created",
        {**API, "api_key_id": "apikey_01workspace"},
        skill_id="skill_01B",
        version="1759178010641129",
    )
    keys: set[str] = set()
    row = _read(mine, keys)
    assert (row.values["subject_id"], row.values["subject_name"]) == ("skill_01B", PLUGIN)
    # the version we recorded: our upload, and its key is ours from now on
    assert row.drift_tenant is None and keys == {"apikey_01workspace"}
    deleted = _record(
        "platform_skill_version_deleted",
        {**API, "api_key_id": "apikey_01workspace"},
        skill_id="skill_01B",
        version="1759178010641129",
    )
    assert _read(deleted, keys).drift_tenant is None
    assert _read(deleted, set()).drift_tenant == "acme"  # a key not known as ours
    other = {**mine, "version": "1759178099999999", "actor": {**API, "api_key_id": THEIRS}}
    assert _read(other, set()).drift_tenant == "acme"  # someone else's version of our skill


def test_an_admin_api_key_actor_is_judged_by_its_key_id() -> None:
    actor = {"type": "admin_api_key_actor", "admin_api_key_id": OURS, "ip_address": "192.0.2.9"}
    actor["user_agent"] = "curl/8"
    raw = _record("claude_plugin_deleted", actor, plugin_id="plugin_01A", plugin_name=PLUGIN)
    assert _read(raw).drift_tenant is None
    assert _read(raw, {THEIRS}).drift_tenant == "acme"
    assert _read(raw).values["actor_id"] == OURS


def test_the_actors_email_is_not_stored_unless_configured() -> None:
    raw = _record("claude_plugin_deleted", PERSON, plugin_id="plugin_01A", plugin_name=PLUGIN)
    stored = _read(raw).values["raw"]
    assert "anna@acme.example" not in stored and '"ip_address":"192.0.2.34"' in stored
