"""The claude-api target end to end: real PostgreSQL, the emulator's Skills API over loopback
through the official SDK, one skill per mapped workspace with that workspace's API key."""

from __future__ import annotations

import logging
from typing import Any

import anthropic
import httpx2
import pytest
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from claresia_sync.db.models import CatalogSkill, Publication
from claresia_sync.emulator import EmulatorServer
from claresia_sync.publish.targets import claude_api_cache as cache
from claresia_sync.release_store import cut_release
from claresia_sync.transpile import bytes_hash
from tests.fixtures.real_api import APPS_KEY, DATA_KEY, archive_files, client, skill_files
from tests.integration.test_publish_e2e import apply, names, publish
from tests.integration.test_publish_e2e import world as world  # the fixture

APPS, DATA = "wrkspc_ferretti_apps", "wrkspc_ferretti_data"
ENG = {"code-review-checklist", "incident-postmortem", "standup-notes"}
DESIGN = {"prd-review", "meeting-summary"}
SKILL_CREATES = ("POST", "/v1/skills")
SKILL_VERSIONS = ("POST", "/v1/skills/{skill_id}/versions")


@pytest.fixture
def on_claude_api(
    engine: Engine, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """ferretti on claude-api too: its own workspace (apps) and a sub-tenant's (data), whose
    designers archetype moved there."""
    monkeypatch.setenv("FERRETTI_APPS_KEY", APPS_KEY)
    monkeypatch.setenv("FERRETTI_DATA_KEY", DATA_KEY)
    root = next(t for t in world["tenants"] if t["slug"] == "ferretti")
    base_url = root["targets"]["claude-enterprise"]["base_url"]
    root["targets"]["claude-api"] = {
        "org_id": "org_ferretti",
        "base_url": base_url,
        "workspace_keys": {APPS: "env:FERRETTI_APPS_KEY", DATA: "env:FERRETTI_DATA_KEY"},
    }
    root["workspaces"] = [{"id": APPS}]
    designer = root["archetypes"].pop(1)
    root["sub_tenants"] = [
        {"slug": "ferretti-data", "workspaces": [{"id": DATA}], "archetypes": [designer]}
    ]
    apply(engine, world)
    return world


def in_workspace(emulator: EmulatorServer, key: str) -> dict[str, Any]:
    with client(emulator, key) as sdk:
        return {s.display_name.split(" ")[0]: s for s in sdk.skills.list(limit=100)}


def test_one_skill_per_workspace_and_no_op_republish(
    engine: Engine,
    emulator: EmulatorServer,
    on_claude_api: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        outcome = publish(engine, "ferretti")
    assert outcome.status == "succeeded", outcome.errors
    assert outcome.stats["created"] == 5 + 5, (
        outcome.stats,
        outcome.errors,
    )  # 5 plugins, 3 + 2 skills
    assert "not eligible for zero data retention" in caplog.text
    apps, data = in_workspace(emulator, APPS_KEY), in_workspace(emulator, DATA_KEY)
    assert set(apps) == names("ferretti", ENG)
    assert set(data) == names("ferretti-data", DESIGN)
    shown = apps["claresia-ferretti-standup-notes"].display_name
    assert "[claresia-sync ferretti/standup-notes sha256:" in shown
    with Session(engine) as s:
        targets = {p.target for p in s.scalars(select(Publication))}
    assert targets == {"claude-enterprise", f"claude-api:{APPS}", f"claude-api:{DATA}"}

    for force in (False, True):
        emulator.stats.reset()
        again = publish(engine, "ferretti", force=force)
        assert again.stats["unchanged"] == 10, (force, again.stats, again.errors)
        assert emulator.stats.writes() == 0


def test_revocation_drift_and_a_lost_database(
    engine: Engine, emulator: EmulatorServer, on_claude_api: dict[str, Any]
) -> None:
    assert publish(engine, "ferretti").status == "succeeded"
    root = next(t for t in on_claude_api["tenants"] if t["slug"] == "ferretti")
    root["archetypes"][0]["grants"].remove("standup-notes")
    apply(engine, on_claude_api)
    with client(emulator, DATA_KEY) as sdk:  # drift: deleted from the workspace by hand
        sdk.skills.delete(in_workspace(emulator, DATA_KEY)["claresia-ferretti-data-prd-review"].id)
    outcome = publish(engine, "ferretti", force=True)
    assert outcome.status == "succeeded", outcome.errors
    assert outcome.stats["deleted"] == 2  # the plugin and the workspace skill
    assert outcome.stats["created"] == 1
    assert set(in_workspace(emulator, APPS_KEY)) == names("ferretti", ENG - {"standup-notes"})
    assert set(in_workspace(emulator, DATA_KEY)) == names("ferretti-data", DESIGN)

    with Session(engine) as s:  # the database is lost: ours are found by their marker
        s.execute(delete(Publication))
        s.commit()
    emulator.stats.reset()
    again = publish(engine, "ferretti")
    assert again.status == "succeeded", again.errors
    assert again.stats["created"] == 8  # adopted, not created twice
    assert len(in_workspace(emulator, APPS_KEY)) == 2 and len(in_workspace(emulator, DATA_KEY)) == 2
    # The archives prove the hashes: no blind new version (the plugins' creates got 409 and
    # were adopted).
    assert emulator.stats.count(*SKILL_VERSIONS) == emulator.stats.count(*SKILL_CREATES) == 0


def test_a_lost_database_recovers_hashes_from_the_archives_and_adopts_no_copy(
    engine: Engine, emulator: EmulatorServer, on_claude_api: dict[str, Any]
) -> None:
    assert publish(engine, "ferretti").status == "succeeded"
    ours = in_workspace(emulator, APPS_KEY)
    standup = ours["claresia-ferretti-standup-notes"]
    review = ours["claresia-ferretti-code-review-checklist"]
    with client(emulator, APPS_KEY) as sdk:
        # A developer deletes ours and makes their own under our exact display name; another
        # copies the display name of a skill of ours that stays.
        sdk.skills.delete(standup.id)
        copied = sdk.skills.create(
            files=skill_files("claresia-ferretti-standup-notes", body="Mine."),
            display_name=standup.display_name,
        )
        twin = sdk.skills.create(
            files=skill_files("claresia-ferretti-code-review-checklist", body="Mine too."),
            display_name=review.display_name,
        )
        # A byte-for-byte copy of ours (display name and files) is proven ours: a twin, as two
        # runs side by side made them (issue 21). Nothing is recorded (the database is lost),
        # so the older (ours) stays and the copy goes.
        exact = sdk.skills.create(
            files=[
                (p, c, "text/markdown")
                for p, c in archive_files(sdk, review.id, review.latest_version_id)
            ],
            display_name=review.display_name,
        )
    with Session(engine) as s:  # a skill changed meanwhile, and the database lost
        row = s.get(CatalogSkill, "incident-postmortem")
        assert row is not None
        row.ir = {**row.ir, "version": "9.9.9"}
        row.ir_hash = "sha256:" + "9" * 64
        s.execute(delete(Publication))
        cut_release(s)
        s.commit()

    emulator.stats.reset()
    outcome = publish(engine, "ferretti", force=True)
    assert outcome.status == "succeeded", outcome.errors
    # One new version (the changed skill), one create (ours, deleted), the twin deleted.
    assert emulator.stats.count(*SKILL_VERSIONS) == 1
    assert emulator.stats.count(*SKILL_CREATES) == 1
    assert emulator.stats.count("DELETE", "/v1/skills/{skill_id}") == 1
    now = {s.id: s for s in in_workspace_all(emulator, APPS_KEY)}
    assert now[copied.id].latest_version_id == copied.latest_version_id  # never adopted
    assert now[twin.id].latest_version_id == twin.latest_version_id
    assert exact.id not in now
    assert now[review.id].latest_version_id == review.latest_version_id  # unchanged: no version
    postmortem = "claresia-ferretti-incident-postmortem"
    changed = in_workspace(emulator, APPS_KEY)[postmortem]
    assert changed.latest_version_id != ours[postmortem].latest_version_id
    with Session(engine) as s:
        rows = s.scalars(select(Publication).where(Publication.target == f"claude-api:{APPS}"))
        recorded = {p.published_name: p for p in rows}
    new = recorded["claresia-ferretti-standup-notes"]
    assert new.remote_skill_id not in (standup.id, copied.id)
    with client(emulator, APPS_KEY) as sdk:  # the recorded hash is the archive's
        files = archive_files(sdk, review.id, review.latest_version_id)
    assert recorded["claresia-ferretti-code-review-checklist"].content_hash == bytes_hash(files)
    assert recorded["claresia-ferretti-code-review-checklist"].remote_skill_id == review.id

    emulator.stats.reset()
    again = publish(engine, "ferretti", force=True)
    assert again.stats["unchanged"] == 10, again.errors
    assert emulator.stats.writes() == 0


def _twin(sdk: anthropic.Anthropic, skill: Any) -> Any:
    """A second skill of ours for one name, as two runs side by side made them: our display
    name over our very files."""
    files = archive_files(sdk, skill.id, skill.latest_version_id)
    return sdk.skills.create(
        files=[(p, c, "text/markdown") for p, c in files], display_name=skill.display_name
    )


def test_twins_heal_to_the_recorded_copy_and_a_revoked_grant_leaves_none(
    engine: Engine, emulator: EmulatorServer, on_claude_api: dict[str, Any]
) -> None:
    assert publish(engine, "ferretti").status == "succeeded"
    ours = in_workspace(emulator, APPS_KEY)
    standup = ours["claresia-ferretti-standup-notes"]
    review = ours["claresia-ferretti-code-review-checklist"]
    with client(emulator, APPS_KEY) as sdk:
        standup_twin = _twin(sdk, standup)
        _twin(sdk, review)  # the older, review, is the recorded one
    with Session(engine) as s:  # the later run recorded its copy of standup-notes
        row = s.scalars(
            select(Publication).where(
                Publication.target == f"claude-api:{APPS}",
                Publication.published_name == "claresia-ferretti-standup-notes",
            )
        ).one()
        row.remote_skill_id = standup_twin.id
        row.remote_version = standup_twin.latest_version_id
        s.commit()

    def copies(name: str) -> list[str]:
        return [
            s.id
            for s in in_workspace_all(emulator, APPS_KEY)
            if s.display_name.split(" ")[0] == f"claresia-ferretti-{name}"
        ]

    assert len(copies("standup-notes")) == len(copies("code-review-checklist")) == 2
    healed = publish(engine, "ferretti", force=True)
    assert healed.status == "succeeded", healed.errors
    assert healed.stats["deleted"] == 2 and healed.stats["created"] == 0, healed.stats
    assert copies("standup-notes") == [standup_twin.id]  # the recorded one, though newer
    assert copies("code-review-checklist") == [review.id]  # the recorded one, the older

    with client(emulator, APPS_KEY) as sdk:  # twins again, then the grant is revoked
        _twin(sdk, review)
    root = next(t for t in on_claude_api["tenants"] if t["slug"] == "ferretti")
    root["archetypes"][0]["grants"].remove("code-review-checklist")
    apply(engine, on_claude_api)
    revoked = publish(engine, "ferretti", force=True)
    assert revoked.status == "succeeded", revoked.errors
    assert copies("code-review-checklist") == []  # every proven copy
    with Session(engine) as s:
        row = s.scalars(
            select(Publication).where(
                Publication.target == f"claude-api:{APPS}",
                Publication.published_name == "claresia-ferretti-code-review-checklist",
            )
        ).one()
    assert (row.status, row.remote_skill_id) == ("unpublished", None)
    emulator.stats.reset()
    again = publish(engine, "ferretti", force=True)
    assert again.status == "succeeded" and emulator.stats.writes() == 0  # healed for good


def in_workspace_all(emulator: EmulatorServer, key: str) -> list[Any]:
    with client(emulator, key) as sdk:
        return list(sdk.skills.list(limit=100))


def test_a_foreign_skill_and_a_key_of_another_workspace(
    engine: Engine,
    emulator: EmulatorServer,
    on_claude_api: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with client(emulator, APPS_KEY) as sdk:  # someone's own skill under our name, no marker
        foreign = sdk.skills.create(files=skill_files("claresia-ferretti-standup-notes"))
    monkeypatch.setenv("FERRETTI_DATA_KEY", APPS_KEY)  # the apps key given for data
    outcome = publish(engine, "ferretti", force=True)
    refused = [e["error"] for e in outcome.errors if e["skill_id"] is None]
    assert any(
        f"workspace {DATA}" in (e or "") and "belongs to workspace" in (e or "") for e in refused
    ), outcome.errors
    with client(emulator, APPS_KEY) as sdk:
        assert sdk.skills.retrieve(foreign.id).display_name == foreign.display_name
        listed = [
            s
            for s in sdk.skills.list(limit=100)
            if s.display_name.startswith("claresia-ferretti-standup")
        ]
    assert len(listed) == 2  # ours beside the foreign one, which is untouched
    with pytest.raises(anthropic.NotFoundError):
        client(emulator, APPS_KEY).skills.retrieve("skill_nope")


VERSION_LISTS = ("GET", "/v1/skills/{skill_id}/versions")
DOWNLOADS = ("GET", "/v1/skills/{skill_id}/versions/{version}/content")


def proof_reads(emulator: EmulatorServer) -> tuple[int, int]:
    """(versions lists, archive downloads) since the last reset."""
    return emulator.stats.count(*VERSION_LISTS), emulator.stats.count(*DOWNLOADS)


def drift_check(engine: Engine, emulator: EmulatorServer) -> tuple[int, int]:
    """A forced republish (what the daemon's drift check queues): its proof reads."""
    emulator.stats.reset()
    outcome = publish(engine, "ferretti", force=True)
    assert outcome.status == "succeeded", outcome.errors
    return proof_reads(emulator)


def test_a_drift_check_of_unchanged_skills_reads_only_the_skills_list_and_still_repairs(
    engine: Engine, emulator: EmulatorServer, on_claude_api: dict[str, Any]
) -> None:
    emulator.stats.reset()
    assert publish(engine, "ferretti").status == "succeeded"
    # The first creates of a workspace wait for one list of its skills, not one each.
    assert emulator.stats.count("GET", "/v1/skills") == 2 + 2  # per workspace: gate, list
    # Each skill's versions and first archive, at most once (the creates' own look for ours
    # may have read some), then nothing: the process remembers what never changes.
    lists, downloads = drift_check(engine, emulator)
    assert lists <= 5 and downloads <= 5
    assert drift_check(engine, emulator) == (0, 0)
    assert emulator.stats.writes() == 0
    assert emulator.stats.count("GET", "/v1/skills") == 2 + 2  # per workspace: gate, list
    remembered = repr([*cache.ARCHIVES.items(), *cache.FIRST.items()])
    assert emulator.base_url in remembered and APPS in remembered
    assert APPS_KEY not in remembered and DATA_KEY not in remembered  # ids, never a key

    # Someone uploads a version to one of ours in the workspace: its latest version is new,
    # so its versions are listed and that version downloaded (the first is remembered), the
    # drift is seen and repaired with a version of ours.
    standup = in_workspace(emulator, APPS_KEY)["claresia-ferretti-standup-notes"]
    with client(emulator, APPS_KEY) as sdk:
        by_hand = sdk.skills.versions.create(
            standup.id,
            files=skill_files("claresia-ferretti-standup-notes", body="Changed by hand."),
        )
    assert drift_check(engine, emulator) == (1, 1)
    assert emulator.stats.count(*SKILL_VERSIONS) == 1 and emulator.stats.writes() == 1
    repaired = in_workspace(emulator, APPS_KEY)["claresia-ferretti-standup-notes"]
    assert repaired.latest_version_id != by_hand.id
    with client(emulator, APPS_KEY) as sdk:
        first = min(sdk.skills.versions.list(standup.id), key=lambda v: (v.created_at, v.id))
        assert bytes_hash(archive_files(sdk, standup.id, repaired.latest_version_id)) == (
            bytes_hash(archive_files(sdk, standup.id, first.id))
        )
    # Our repair is a version new to the process: read once, then remembered.
    assert drift_check(engine, emulator) == (1, 1)
    assert emulator.stats.writes() == 0
    assert drift_check(engine, emulator) == (0, 0)


def test_a_copied_display_name_stays_refused_without_reading_it_again(
    engine: Engine, emulator: EmulatorServer, on_claude_api: dict[str, Any]
) -> None:
    assert publish(engine, "ferretti").status == "succeeded"
    review = in_workspace(emulator, APPS_KEY)["claresia-ferretti-code-review-checklist"]
    with client(emulator, APPS_KEY) as sdk:
        copy = sdk.skills.create(
            files=skill_files("claresia-ferretti-code-review-checklist", body="Mine."),
            display_name=review.display_name,
        )
    lists, downloads = drift_check(engine, emulator)  # the copy's, and ours not yet read
    assert 1 <= lists <= 6 and 1 <= downloads <= 6
    assert drift_check(engine, emulator) == (0, 0)
    assert emulator.stats.writes() == 0

    # Our very files uploaded as a new version of the copy prove nothing: its first version
    # (remembered) is not what the name states, so only its versions are listed again.
    with client(emulator, APPS_KEY) as sdk:
        ours = archive_files(sdk, review.id, review.latest_version_id)
        sdk.skills.versions.create(copy.id, files=[(p, c, "text/markdown") for p, c in ours])
    assert drift_check(engine, emulator) == (1, 0)
    assert emulator.stats.writes() == 0
    with Session(engine) as s:
        rows = s.scalars(select(Publication).where(Publication.target == f"claude-api:{APPS}"))
        recorded = {p.published_name: p.remote_skill_id for p in rows}
    assert recorded["claresia-ferretti-code-review-checklist"] == review.id
    assert copy.id not in recorded.values()


def test_a_warm_drift_check_of_the_demo_api_tenant_makes_two_calls(
    engine: Engine, emulator: EmulatorServer, world: dict[str, Any]
) -> None:
    """docs/targets.md: vespucci (two skills, one workspace) costs the gate's list and the
    skills list once the process has read its skills' versions."""
    assert publish(engine, "vespucci").status == "succeeded"
    emulator.stats.reset()
    assert publish(engine, "vespucci", force=True).status == "succeeded"
    assert emulator.stats.count() <= 6
    emulator.stats.reset()
    again = publish(engine, "vespucci", force=True)
    assert again.stats["unchanged"] == 2, again.errors
    assert emulator.stats.count() == emulator.stats.count("GET", "/v1/skills") == 2


@pytest.mark.parametrize("mode", ["direct", "versions_first"])
def test_a_revoked_skill_with_versions_is_deleted_whichever_way_the_api_asks(
    engine: Engine, emulator: EmulatorServer, on_claude_api: dict[str, Any], mode: str
) -> None:
    """docs/real-api.md S7: the docs do not say whether a skill with versions can be deleted
    directly. Either way the revoked skill goes: directly, or its versions first when the API
    refuses (400 "... Delete all versions first.")."""
    answer = httpx2.post(
        f"{emulator.base_url}/_emulator/orgs/org_ferretti", json={"skill_delete": mode}
    )
    assert answer.status_code == 200, answer.text
    assert publish(engine, "ferretti").status == "succeeded"
    standup = in_workspace(emulator, APPS_KEY)["claresia-ferretti-standup-notes"]
    with client(emulator, APPS_KEY) as sdk:  # a second version (an administrator's)
        sdk.skills.versions.create(
            standup.id, files=skill_files("claresia-ferretti-standup-notes", body="By hand.")
        )
    root = next(t for t in on_claude_api["tenants"] if t["slug"] == "ferretti")
    root["archetypes"][0]["grants"].remove("standup-notes")
    apply(engine, on_claude_api)
    emulator.stats.reset()
    outcome = publish(engine, "ferretti")
    assert outcome.status == "succeeded", outcome.errors
    assert outcome.stats["deleted"] == 2  # the plugin and the workspace skill
    assert set(in_workspace(emulator, APPS_KEY)) == names("ferretti", ENG - {"standup-notes"})
    deletes = [emulator.stats.count("DELETE", "/v1/skills/{skill_id}", s) for s in (400, 200)]
    version_deletes = emulator.stats.count("DELETE", "/v1/skills/{skill_id}/versions/{version}")
    if mode == "direct":
        assert deletes == [0, 1] and version_deletes == 0
    else:
        assert deletes == [1, 1] and version_deletes == 2
