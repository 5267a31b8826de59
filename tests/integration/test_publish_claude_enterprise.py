"""The claude-enterprise target end to end: real PostgreSQL, the emulator's Plugins API over
loopback through the official SDK, every outcome checked in the @ picker of real users of the
demo's Claude Enterprise organisation (org_ferretti)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, delete, func, select, text, update
from sqlalchemy.orm import Session

from claresia_sync.db.models import CatalogSkill, Publication
from claresia_sync.emulator import EmulatorServer
from claresia_sync.emulator.state import ENTERPRISE_SCOPES
from claresia_sync.release_store import cut_release
from claresia_sync.tenancy import apply_tenants, parse_tenants
from tests.fixtures.real_api import (
    DESIGNERS,
    ENGINEERS,
    ENTERPRISE_KEY,
    READONLY_KEY,
    client,
    picker,
)
from tests.fixtures.real_api import plugin_files as foreign_files
from tests.integration.test_publish_e2e import apply, names, publish
from tests.integration.test_publish_e2e import world as world  # the fixture

ENG = {"code-review-checklist", "incident-postmortem", "standup-notes"}
DESIGN = {"prd-review", "meeting-summary"}
SALES = "rbac_group_ferretti_sales"


def seen(emulator: EmulatorServer, user: str) -> set[str]:
    return set(picker(emulator, f"user_ferretti_{user}"))


def plugins(emulator: EmulatorServer) -> list[Any]:
    with client(emulator) as sdk:
        return list(sdk.beta.organization.plugins.list(limit=100))


def ferretti(data: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = next(t for t in data["tenants"] if t["slug"] == "ferretti")
    return found


def test_onboarding_then_no_op(
    engine: Engine, emulator: EmulatorServer, world: dict[str, Any]
) -> None:
    outcome = publish(engine, "ferretti")
    assert outcome.status == "succeeded", outcome.errors
    assert outcome.stats["created"] == 5
    assert seen(emulator, "anna") == names("ferretti", ENG)
    assert seen(emulator, "bruno") == names("ferretti", ENG | DESIGN)
    assert seen(emulator, "chiara") == names("ferretti", DESIGN)
    assert seen(emulator, "dario") == seen(emulator, "guest") == set()

    listed = {p.name: p for p in plugins(emulator)}
    assert set(listed) == names("ferretti", ENG | DESIGN)
    plugin = listed["claresia-ferretti-prd-review"]
    assert plugin.organization_installation_preference == "not_available"
    assert plugin.description.endswith("]") and "[claresia-sync ferretti/prd-review sha256:" in (
        plugin.description
    )
    with client(emulator) as sdk:
        settings = sdk.beta.organization.plugins.installation_settings.list(plugin.id)
        by_target = {getattr(s.target, "rbac_group_id", "org"): s for s in settings}
    assert by_target[DESIGNERS].installation_preference == "available"
    with Session(engine) as s:
        pub = s.scalars(select(Publication).where(Publication.published_name == plugin.name)).one()
    assert pub.target == "claude-enterprise" and pub.remote_skill_id == plugin.id
    assert pub.acl == {"organization": "not_available", "rbac_groups": {DESIGNERS: "available"}}

    emulator.stats.reset()
    again = publish(engine, "ferretti")
    assert again.stats["unchanged"] == 5 and again.stats["created"] == 0
    assert emulator.stats.writes() == 0


def test_grant_removed_group_moved_deprecated(
    engine: Engine, emulator: EmulatorServer, world: dict[str, Any]
) -> None:
    assert publish(engine, "ferretti").status == "succeeded"
    data = world
    eng, designer = ferretti(data)["archetypes"]
    eng["grants"].remove("standup-notes")  # grant removed
    designer["rbac_group"] = SALES  # archetype moved to another group
    apply(engine, data)
    with Session(engine) as s:  # deprecated
        s.execute(
            update(CatalogSkill)
            .where(CatalogSkill.skill_id == "incident-postmortem")
            .values(deprecated=True)
        )
        cut_release(s)
        s.commit()
    outcome = publish(engine, "ferretti")
    assert outcome.status == "succeeded", outcome.errors
    assert outcome.stats["deleted"] == 2 and outcome.stats["acl"] == 2
    assert seen(emulator, "anna") == names("ferretti", {"code-review-checklist"})
    assert seen(emulator, "chiara") == set()  # designers no longer
    assert seen(emulator, "dario") == names("ferretti", DESIGN)  # sales now
    assert {p.name for p in plugins(emulator)} == names(
        "ferretti", {"code-review-checklist"} | DESIGN
    )


def test_drift_in_claude_ai_repaired_and_a_lost_database_makes_no_twin(
    engine: Engine, emulator: EmulatorServer, world: dict[str, Any]
) -> None:
    assert publish(engine, "ferretti").status == "succeeded"
    listed = {p.name: p for p in plugins(emulator)}
    with client(emulator) as sdk:
        api = sdk.beta.organization.plugins
        api.delete(listed["claresia-ferretti-standup-notes"].id)
        review = listed["claresia-ferretti-code-review-checklist"].id
        api.installation_settings.set(
            "organization", plugin_id=review, installation_preference="required"
        )
        api.installation_settings.remove(ENGINEERS, plugin_id=review)
    assert "claresia-ferretti-code-review-checklist" in seen(emulator, "dario")  # drifted
    repaired = publish(engine, "ferretti", force=True)
    assert repaired.status == "succeeded", repaired.errors
    assert repaired.stats["created"] == 1 and repaired.stats["acl"] == 1
    assert seen(emulator, "anna") == names("ferretti", ENG)
    assert seen(emulator, "dario") == set()

    with Session(engine) as s:  # the database is lost: the server proves what is ours
        s.execute(delete(Publication))
        s.commit()
    again = publish(engine, "ferretti", force=True)
    assert again.status == "succeeded", again.errors
    assert again.stats["created"] == 0 and again.stats["updated"] == 0
    assert len(plugins(emulator)) == 5  # no twin
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Publication)) == 5


def test_a_foreign_plugin_with_our_name_is_left_untouched(
    engine: Engine, emulator: EmulatorServer, world: dict[str, Any]
) -> None:
    name = "claresia-ferretti-standup-notes"
    with client(emulator) as sdk:  # an administrator's plugin (no marker) takes our name
        foreign = sdk.beta.organization.plugins.create(files=foreign_files(name, "standup"))
    outcome = publish(engine, "ferretti")
    assert outcome.status == "partial"
    assert outcome.stats["created"] == 4 and outcome.stats["failed"] == 1
    (error,) = [e["error"] for e in outcome.errors]
    assert f"plugin name {name} is held by plugin {foreign.id}" in error
    assert "left untouched" in error and "rename or delete that plugin in claude.ai" in error
    forced = publish(engine, "ferretti", force=True)
    assert forced.stats["deleted"] == 0 and forced.stats["failed"] == 1
    with client(emulator) as sdk:
        still = sdk.beta.organization.plugins.retrieve(foreign.id)
    assert still.latest_version_id == foreign.latest_version_id
    assert "standup" in seen(emulator, "guest")  # the marketplace default: available to all


def test_registration_pending_is_completed_with_a_version(
    engine: Engine, emulator: EmulatorServer, world: dict[str, Any]
) -> None:
    emulator.set_faults(script=["registration_pending"])
    outcome = publish(engine, "ferretti")
    assert outcome.status == "succeeded", outcome.errors
    assert seen(emulator, "bruno") == names("ferretti", ENG | DESIGN)
    assert len(plugins(emulator)) == 5


def test_a_version_that_fails_the_content_scan_fails_its_skill(
    engine: Engine, emulator: EmulatorServer, world: dict[str, Any]
) -> None:
    """claude.ai's content scan fails the first upload (stored, never served): that skill is
    failed, its error says why and what to do, and the others are published."""
    emulator.set_faults(script=["scan_failed"])
    outcome = publish(engine, "ferretti")
    assert outcome.status == "partial", outcome.errors
    assert outcome.stats["created"] == 4 and outcome.stats["failed"] == 1
    (error,) = [e["error"] for e in outcome.errors]
    assert "failed the content scan of claude.ai" in error, error
    assert "change the skill's content and publish again" in error
    failed = error.split(":")[0]
    assert failed in names("ferretti", ENG | DESIGN)
    assert seen(emulator, "bruno") == names("ferretti", ENG | DESIGN) - {failed}
    with Session(engine) as s:
        pub = s.scalars(select(Publication).where(Publication.published_name == failed)).one()
    assert pub.status == "failed" and pub.last_error == error


def test_a_create_whose_answer_is_unreadable_is_adopted_not_made_twice(
    engine: Engine, emulator: EmulatorServer, world: dict[str, Any]
) -> None:
    """A plugin is stored but its create's answer is a proxy's HTML page: the skill fails for a
    passing reason naming the call, and the job's next round adopts the stored plugin (409,
    our marker) instead of making a twin."""
    creates = ("POST", "/v1/organizations/plugins")
    emulator.set_faults(script=["corrupt:not_json"], routes=[" ".join(creates)])
    outcome = publish(engine, "ferretti")
    assert outcome.status == "succeeded", outcome.errors
    assert emulator.faults.corrupted[("not_json", creates[1])] == 1
    assert emulator.stats.count(*creates, status=409) == 1  # the next round's create: adopted
    assert len(plugins(emulator)) == 5
    assert seen(emulator, "bruno") == names("ferretti", ENG | DESIGN)


def test_registration_pending_is_never_retried_whatever_its_headers_say(
    engine: Engine, emulator: EmulatorServer, world: dict[str, Any]
) -> None:
    """The SDK's docstring: a 503 `registration_pending` create must not be retried (the retry
    answers `plugin_name_taken` and the stored plugin stays unusable); a version completes it.
    Here the 503 says `x-should-retry: true` and `retry-after: 0`, as a gateway might add."""
    emulator.set_faults(
        script=["registration_pending"],
        code_headers={"registration_pending": {"x-should-retry": "true", "retry-after": "0"}},
    )
    outcome = publish(engine, "ferretti")
    assert outcome.status == "succeeded", outcome.errors
    creates = ("POST", "/v1/organizations/plugins")
    assert emulator.stats.count(*creates, status=503) == 1
    assert emulator.stats.count(*creates, status=409) == 0  # the create was not sent again
    assert emulator.stats.count(*creates) == 5
    assert emulator.stats.count("POST", "/v1/organizations/plugins/{plugin_id}/versions") == 1
    assert seen(emulator, "bruno") == names("ferretti", ENG | DESIGN)  # completed: usable


def test_a_pending_version_is_completed_by_a_later_version(
    engine: Engine, emulator: EmulatorServer, world: dict[str, Any]
) -> None:
    """A new version answers `registration_pending`; the SDK: "a later version create on the
    Plugin completes it" (one more upload, not a failed skill and a plugin left unusable)."""
    assert publish(engine, "ferretti").status == "succeeded"
    review = names("ferretti", {"prd-review"}).pop()
    with Session(engine) as s:  # the table says another content was published: a new version
        s.execute(
            update(Publication)
            .where(Publication.published_name == review)
            .values(content_hash="sha256:" + "0" * 64)
        )
        s.commit()
    versions = ("POST", "/v1/organizations/plugins/{plugin_id}/versions")
    emulator.set_faults(script=["registration_pending"], routes=[" ".join(versions)])
    emulator.stats.reset()
    outcome = publish(engine, "ferretti")
    assert outcome.status == "succeeded", outcome.errors
    assert outcome.stats["updated"] == 1
    assert [emulator.stats.count(*versions, status=s) for s in (503, 200)] == [1, 1]
    assert seen(emulator, "bruno") == names("ferretti", ENG | DESIGN)  # usable again


def test_a_removal_repeated_after_a_lost_answer_is_done(
    engine: Engine, emulator: EmulatorServer, world: dict[str, Any]
) -> None:
    """A group's setting removal is applied but its answer lost (a gateway's 504); the retry is
    answered 404, which the SDK's docstring says means the setting is already gone: done, not
    a vanished plugin to create again."""
    assert publish(engine, "ferretti").status == "succeeded"
    ferretti(world)["archetypes"][1]["rbac_group"] = SALES  # the designers' settings move
    apply(engine, world)
    setting = "/v1/organizations/plugins/{plugin_id}/installation_settings/{target}"
    emulator.set_faults(script=["lost"], routes=[f"DELETE {setting}"])
    emulator.stats.reset()
    outcome = publish(engine, "ferretti")
    assert outcome.status == "succeeded", outcome.errors
    assert outcome.stats["acl"] == 2 and outcome.stats["created"] == 0
    assert emulator.stats.count("DELETE", setting, status=504) == 1
    assert emulator.stats.count("DELETE", setting, status=404) == 1
    assert emulator.stats.count("POST", "/v1/organizations/plugins") == 0  # not taken for gone
    assert seen(emulator, "chiara") == set()
    assert seen(emulator, "dario") == names("ferretti", DESIGN)


@pytest.mark.parametrize(
    ("scan", "said"),
    [("scan_errored", "no verdict: scan-did-not-finish"), ("scan_unknown", "assessed unknown")],
)
def test_a_scan_that_errored_or_is_unknown_fails_like_a_failed_one(
    engine: Engine, emulator: EmulatorServer, world: dict[str, Any], scan: str, said: str
) -> None:
    """The SDK: a version whose scan `errored`, or whose assessment is `fail` or `unknown`, is
    refused service (`scan_failed`); claresia-sync reports each as that skill's error."""
    emulator.set_faults(script=[scan])
    outcome = publish(engine, "ferretti")
    assert outcome.stats["failed"] == 1 and outcome.stats["created"] == 4, outcome.errors
    (error,) = [e["error"] for e in outcome.errors]
    assert "failed the content scan of claude.ai" in error and said in error, error
    failed = error.split(":")[0]
    assert seen(emulator, "bruno") == names("ferretti", ENG | DESIGN) - {failed}


def test_tenant_removed_deletes_its_plugins(
    engine: Engine, emulator: EmulatorServer, world: dict[str, Any]
) -> None:
    """A sub-tenant maps to rbac groups; when it goes, so do its plugins: through the tenants
    file (its grants first, as `tenants apply` asks), or found on the server by their marker
    when the database no longer knows the tenant."""
    data = world
    root = ferretti(data)
    designer = root["archetypes"].pop(1)
    root["sub_tenants"] = [
        {"slug": "ferretti-design", "archetypes": [designer]},
        {"slug": "ferretti-ops", "archetypes": [{**designer, "slug": "ops"}]},
    ]
    apply(engine, data)
    assert publish(engine, "ferretti").status == "succeeded"
    both = names("ferretti-design", DESIGN) | names("ferretti-ops", DESIGN)
    assert seen(emulator, "chiara") == both

    root["sub_tenants"][0]["archetypes"] = []
    apply(engine, data)
    assert publish(engine, "ferretti").stats["deleted"] == 2
    root["sub_tenants"].pop(0)
    apply(engine, data)  # now it may go
    assert seen(emulator, "chiara") == names("ferretti-ops", DESIGN)

    with Session(engine) as s:  # ferretti-ops vanishes from the database alone
        s.execute(
            text("DELETE FROM publication WHERE published_name LIKE 'claresia-ferretti-ops-%'")
        )
        s.execute(text("DELETE FROM tenant WHERE slug = 'ferretti-ops'"))
        s.commit()
    outcome = publish(engine, "ferretti", force=True)
    assert outcome.status == "succeeded", outcome.errors
    assert outcome.stats["deleted"] == 2
    assert seen(emulator, "chiara") == set()
    assert {p.name for p in plugins(emulator)} == names("ferretti", ENG)


def test_without_attestation_the_tenant_is_refused(
    engine: Engine, emulator: EmulatorServer, world: dict[str, Any]
) -> None:
    del ferretti(world)["zero_retention"]
    apply(engine, world)
    outcome = publish(engine, "ferretti")
    assert outcome.status == "failed"
    (error,) = [e["error"] for e in outcome.errors]
    assert "zero-retention not attested — Claresia refuses to publish. Enable zero-retention" in (
        error
    )
    assert plugins(emulator) == []


def test_missing_scope_and_a_non_enterprise_organisation_are_one_line_each(
    engine: Engine,
    emulator: EmulatorServer,
    world: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLARESIA_FERRETTI_ENTERPRISE_KEY", READONLY_KEY)  # no write:plugins
    outcome = publish(engine, "ferretti")
    assert outcome.status == "failed" and outcome.stats["failed"] == 5
    for error in (e["error"] for e in outcome.errors):
        assert "\n" not in error and "403" in error and "write:plugins" in error, error
        assert "re-mint it in claude.ai with the scopes write:plugins, read:plugins" in error

    # A Claude Enterprise key of an organisation that is not on Claude Enterprise.
    key = "sk-ant-api01-dainese-ENT-" + "0" * 40
    emulator.state.add_admin_key("org_dainese", key, scopes=ENTERPRISE_SCOPES)
    monkeypatch.setenv("CLARESIA_FERRETTI_ENTERPRISE_KEY", key)
    ferretti(world)["targets"]["claude-enterprise"]["org_id"] = "org_dainese"
    world["tenants"] = [t for t in world["tenants"] if t["slug"] == "ferretti"]
    with Session(engine) as session:  # the demo's org_dainese tenant goes (nothing published)
        config = parse_tenants(yaml.safe_dump(world), "t.yaml")
        apply_tenants(session, config, source="t.yaml", prune=True)
        session.commit()
    refused = publish(engine, "ferretti")
    (error,) = [e["error"] for e in refused.errors]
    assert "\n" not in error and "organisation org_dainese" in error
    assert "Claude Enterprise" in error and "use the claude-api target otherwise" in error, error


def test_a_plugin_an_administrator_made_with_our_marker_is_not_adopted(
    engine: Engine, emulator: EmulatorServer, world: dict[str, Any]
) -> None:
    """The emulator's fault: an administrator's plugin takes the name first, made in claude.ai
    from the same files (our marker included). Made by a person: never ours."""
    emulator.set_faults(script=["plugin_name_taken"])
    outcome = publish(engine, "ferretti")
    assert outcome.stats["created"] == 4 and outcome.stats["failed"] == 1
    (error,) = [e["error"] for e in outcome.errors]
    assert "created by a user_actor" in error and "left untouched" in error, error
    holders = [p for p in plugins(emulator) if p.created_by and p.created_by.type == "user_actor"]
    assert len(holders) == 1 and "[claresia-sync ferretti/" in (holders[0].description or "")
    assert holders[0].organization_installation_preference != "not_available"  # untouched


def test_a_no_op_reads_the_plugins_api_alone_and_still_refuses_a_lost_key(
    engine: Engine, emulator: EmulatorServer, world: dict[str, Any]
) -> None:
    """A no-op makes one read per organisation, the Plugins API: the key's organisation was
    proven once in this process (a key never moves) and the groups are read only when a setting
    is to be written. That read still refuses the organisation once its key loses a scope or is
    revoked between two runs, and a group that no longer exists is still caught before a write."""
    assert publish(engine, "ferretti").stats["created"] == 5
    emulator.stats.reset()
    again = publish(engine, "ferretti")
    assert again.status == "succeeded" and again.stats["unchanged"] == 5
    assert emulator.stats.count() == emulator.stats.count("GET", "/v1/organizations/plugins") == 1

    with emulator.state.lock:  # re-minted without read:plugins: the same read answers 403
        record = emulator.state.keys[ENTERPRISE_KEY]
        emulator.state.keys[ENTERPRISE_KEY] = replace(
            record, scopes=record.scopes - {"read:plugins"}
        )
    refused = publish(engine, "ferretti")
    assert refused.status == "failed" and refused.stats["failed"] == 5
    (error,) = [e["error"] for e in refused.errors]
    assert "organisation org_ferretti" in error and "403" in error and "read:plugins" in error

    with emulator.state.lock:  # revoked: 401
        del emulator.state.keys[ENTERPRISE_KEY]
    emulator.stats.reset()
    refused = publish(engine, "ferretti")
    assert refused.status == "failed" and emulator.stats.writes() == 0
    (error,) = [e["error"] for e in refused.errors]
    assert "401" in error and "re-paste it" in error, error

    with emulator.state.lock:
        emulator.state.keys[ENTERPRISE_KEY] = record
    ferretti(world)["archetypes"][1]["rbac_group"] = "rbac_group_ferretti_gone"
    apply(engine, world)
    moved = publish(engine, "ferretti")  # the designers' settings would be written: checked
    assert moved.stats["failed"] == 2 and moved.stats["unchanged"] == 3
    assert all(
        "rbac_group_ferretti_gone not in organisation org_ferretti" in e["error"]
        for e in moved.errors
    ), moved.errors
