"""The kill switch (issue 22; docs/releases.md, "Switch a skill off"): `skill disable` takes a
skill away from every user on all three targets, ahead of running work, and keeps it away until
`skill enable`; audited in the operator action log."""

from __future__ import annotations

import asyncio
import copy
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from claresia_sync.catalog_store import import_catalog
from claresia_sync.config import Settings
from claresia_sync.db.models import PublishJob
from claresia_sync.emulator import EmulatorServer
from claresia_sync.ir import load_catalog
from claresia_sync.publish import jobs, kill_switch
from claresia_sync.publish.job_run import run_job
from tests.cli import ROOT, clean_env, run_cli
from tests.fixtures.emulator import (
    ACME_KEY,
    DAINESE_KEY,
    FERRETTI_ENTERPRISE_KEY,
    VESPUCCI_API_KEY,
    api_client,
)
from tests.fixtures.real_api import client, picker
from tests.integration.test_publish_e2e import CATALOG, apply, publish, visible
from tests.integration.test_publish_e2e import world as world  # the fixture
from tests.integration.test_rollouts import NEW_SUMMARY, remote_skill_md, versions

SKILL = "meeting-summary"  # acme, dainese, dainese-corp (org-skills), ferretti, vespucci
KEYS = {
    "CLARESIA_DAINESE_ADMIN_KEY": DAINESE_KEY,
    "CLARESIA_ACME_ADMIN_KEY": ACME_KEY,
    "CLARESIA_FERRETTI_ENTERPRISE_KEY": FERRETTI_ENTERPRISE_KEY,
    "CLARESIA_VESPUCCI_SUPPORT_API_KEY": VESPUCCI_API_KEY,
}


def _env(settings: Settings) -> dict[str, str]:
    return clean_env(settings, **KEYS)


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env=_env(settings))


def _org_skills(emulator: EmulatorServer, org: str) -> set[str]:
    return {r.name for r in emulator.state.org(org).skills.values()}


def _workspace(emulator: EmulatorServer) -> set[str]:
    with client(emulator, VESPUCCI_API_KEY) as sdk:
        return {s.display_name.split(" ")[0] for s in sdk.skills.list(limit=100)}


def _seen_anywhere(emulator: EmulatorServer) -> dict[str, bool]:
    """Whether any user sees meeting-summary, per target, as users see them."""
    return {
        "org-skills dainese": any(
            SKILL in name
            for user in ("paolo", "elena", "luca", "sofia")
            for name in visible(emulator, f"user_dainese_{user}")
        ),
        "org-skills acme": f"claresia-acme-{SKILL}"
        in visible(emulator, "user_acme_alice", "org_acme"),
        "claude-enterprise": any(
            f"claresia-ferretti-{SKILL}" in picker(emulator, f"user_ferretti_{user}")
            for user in ("anna", "bruno", "chiara", "dario", "guest")
        ),
        "claude-api": f"claresia-vespucci-{SKILL}" in _workspace(emulator),
    }


def _ferretti_plugin(emulator: EmulatorServer) -> Any:
    with client(emulator) as sdk:
        found = [
            p
            for p in sdk.beta.organization.plugins.list(limit=100)
            if p.name == f"claresia-ferretti-{SKILL}"
        ]
        assert len(found) == 1
        settings = list(sdk.beta.organization.plugins.installation_settings.list(found[0].id))
    return found[0], settings


def test_disable_takes_the_skill_away_on_every_target_until_enabled(
    engine: Engine, emulator: EmulatorServer, world: dict[str, Any], db_settings: Settings
) -> None:
    assert publish(engine).status == "succeeded"
    assert all(_seen_anywhere(emulator).values()), _seen_anywhere(emulator)
    plugin_before, _ = _ferretti_plugin(emulator)

    missing = _cli(db_settings, "skill", "disable", SKILL)
    assert missing.returncode == 2 and "--reason" in missing.stderr
    unknown = _cli(db_settings, "skill", "disable", "no-such-skill", "--reason", "x")
    assert unknown.returncode == 1
    assert "unknown skill 'no-such-skill'" in unknown.stderr and "catalog list" in unknown.stderr

    emulator.stats.reset()
    off = _cli(
        db_settings, "skill", "disable", SKILL, "--reason", "leaks a draft", "--by", "ops-anna"
    )
    assert off.returncode == 0, off.stderr
    assert f"skill {SKILL} disabled for every tenant: kill-switch job" in off.stdout
    assert _seen_anywhere(emulator) == dict.fromkeys(_seen_anywhere(emulator), False)
    assert {"org_dainese", "org_acme"} <= set(emulator.stats.last_write_at())  # bench's measure
    # org-skills and claude-api: deleted; claude-enterprise: the same plugin, not_available to
    # the organisation and no group setting left (the Plugins API's reversible way out of use).
    assert not any(SKILL in n for n in _org_skills(emulator, "org_dainese"))
    assert not any(SKILL in n for n in _org_skills(emulator, "org_acme"))
    plugin, settings = _ferretti_plugin(emulator)
    assert plugin.id == plugin_before.id
    assert [(s.target.type, s.installation_preference) for s in settings] == [
        ("organization", "not_available")
    ]

    listed = _cli(db_settings, "skill", "list-disabled", "--json")
    [row] = json.loads(listed.stdout)
    assert (row["skill_id"], row["tenant"], row["reason"], row["disabled_by"]) == (
        SKILL,
        None,
        "leaks a draft",
        "ops-anna",
    )

    # No later publish, forced republish or drift check puts it back while it is disabled.
    again = _cli(db_settings, "republish", "--all", "--force")
    assert again.returncode == 0, again.stderr
    assert not any(_seen_anywhere(emulator).values())

    refused = _cli(db_settings, "skill", "enable", SKILL, "--tenant", "acme")
    assert refused.returncode == 1 and "disabled for every tenant" in refused.stderr
    on = _cli(db_settings, "skill", "enable", SKILL, "--by", "ops-anna")
    assert on.returncode == 0, on.stderr
    assert all(_seen_anywhere(emulator).values()), _seen_anywhere(emulator)
    assert _ferretti_plugin(emulator)[0].id == plugin_before.id  # given back, not re-created
    assert json.loads(_cli(db_settings, "skill", "list-disabled", "--json").stdout) == []

    with engine.connect() as conn:
        audit = conn.execute(
            text(
                "SELECT actor, role, action, target, params->>'reason', outcome, job_id "
                "FROM center_action ORDER BY id"
            )
        ).all()
    assert [tuple(a)[:6] for a in audit] == [
        (f"cli:{_os_user()}", "cli", "skill.disable", "no-such-skill", "x", "refused"),
        ("cli:ops-anna", "cli", "skill.disable", SKILL, "leaks a draft", "ok"),
        (f"cli:{_os_user()}", "cli", "skill.enable", SKILL, None, "refused"),
        ("cli:ops-anna", "cli", "skill.enable", SKILL, None, "ok"),
    ]
    assert audit[1].job_id is not None and audit[3].job_id is not None


def _os_user() -> str:
    from claresia_sync.release_store import operator

    return operator()


def test_one_tenant_only_and_its_sub_tenants(
    engine: Engine, emulator: EmulatorServer, world: dict[str, Any], db_settings: Settings
) -> None:
    assert publish(engine).status == "succeeded"
    off = _cli(db_settings, "skill", "disable", SKILL, "--tenant", "dainese", "--reason", "bad")
    assert off.returncode == 0, off.stderr
    seen = _seen_anywhere(emulator)
    assert not seen["org-skills dainese"]  # dainese and its sub-tenant dainese-corp
    assert seen["org-skills acme"] and seen["claude-enterprise"] and seen["claude-api"]
    table = _cli(db_settings, "skill", "list-disabled")
    assert SKILL in table.stdout and "dainese" in table.stdout and "bad" in table.stdout
    on = _cli(db_settings, "skill", "enable", SKILL, "--tenant", "dainese")
    assert on.returncode == 0, on.stderr
    assert all(_seen_anywhere(emulator).values())


def _job(engine: Engine, job_id: int) -> PublishJob:
    with Session(engine) as s:
        job = s.get(PublishJob, job_id)
        assert job is not None
        s.expunge(job)
        return job


def test_the_kill_switch_goes_ahead_of_a_long_running_republish_of_the_tenant(
    engine: Engine, emulator: EmulatorServer, world: dict[str, Any], db_settings: Settings
) -> None:
    assert publish(engine, "dainese").status == "succeeded"
    # Every dainese skill but meeting-summary deleted behind our back: a forced republish
    # re-creates 11 skills (create + ACL each), one call at a time at 1 s: about 25 s (a
    # command line takes seconds to start on a loaded machine).
    doomed = [
        r.id for r in emulator.state.org("org_dainese").skills.values() if SKILL not in r.name
    ]

    async def delete_behind_our_back() -> None:
        api, _ = api_client(emulator)
        async with api:
            for skill_id in doomed:
                await api.delete_skill("org_dainese", skill_id)

    asyncio.run(delete_behind_our_back())
    assert len(doomed) == 11
    emulator.set_faults(latency_ms=1000)
    long = subprocess.Popen(
        [sys.executable, "-m", "claresia_sync", "republish", "--tenant", "dainese", "--force",
         "--concurrency", "1"],
        env=_env(db_settings), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        with Session(engine) as s:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                long_id = s.scalar(select(PublishJob.id).where(PublishJob.force))
                done = long_id and (_job(engine, long_id).stats.get("progress") or {}).get("done")
                if done:
                    break
                time.sleep(0.2)
        assert long_id is not None and done, "the republish never got going"

        off = _cli(db_settings, "skill", "disable", SKILL, "--tenant", "dainese", "--reason", "r")
        assert off.returncode == 0, off.stderr
        # Taken away while the republish still runs (it gave way, and resumes after).
        assert not any(SKILL in n for n in _org_skills(emulator, "org_dainese"))
        assert _job(engine, long_id).status in (jobs.JobStatus.QUEUED, jobs.JobStatus.RUNNING), (
            [jobs.get_job(engine, i).as_json() for i in (long_id, long_id + 1)],
        )
        _out, err = long.communicate(timeout=120)
    finally:
        long.kill()
    assert long.returncode == 0, err
    assert "gave way to a kill-switch job" in err
    kill = _job(engine, long_id + 1)
    assert kill.priority == jobs.PRIORITY_KILL_SWITCH and kill.status == "succeeded"
    republish = _job(engine, long_id)
    assert republish.status == "succeeded"
    assert kill.finished_at is not None and republish.finished_at is not None
    assert kill.finished_at < republish.finished_at
    # The resumed republish did not put it back; the other skills are all there.
    names = _org_skills(emulator, "org_dainese")
    assert not any(SKILL in n for n in names) and len(names) == 11
    emulator.set_faults()


def test_priority_claims_first_and_holds_back_lower_jobs_of_the_same_tenants(
    engine: Engine, world: dict[str, Any]
) -> None:
    with Session(engine) as s:
        normal = jobs.enqueue(s, "dainese")
        other = jobs.enqueue(s, "acme")
        urgent = jobs.enqueue(s, "dainese-corp", priority=jobs.PRIORITY_KILL_SWITCH)
        s.commit()
    first = jobs.claim(engine, "w")
    assert first is not None and first.id == urgent  # requested last, claimed first
    # While it runs, dainese's job (same root) waits; acme's goes ahead.
    second = jobs.claim(engine, "w")
    assert second is not None and second.id == other
    assert jobs.claim(engine, "w") is None
    assert jobs.beat(engine, other) == jobs.Beat(cancel=False, must_yield=False)
    jobs.finish(engine, urgent, jobs.JobStatus.SUCCEEDED, {}, [])
    third = jobs.claim(engine, "w")
    assert third is not None and third.id == normal
    # A kill switch for every tenant: both running jobs are told to yield, and go back queued.
    with Session(engine) as s:
        jobs.enqueue(s, None, priority=jobs.PRIORITY_KILL_SWITCH)
        s.commit()
    assert jobs.beat(engine, normal).must_yield and jobs.beat(engine, other).must_yield
    assert jobs.requeue_yielded(engine, normal)
    view = jobs.get_job(engine, normal)
    assert (view.status, view.claimed_by, view.stats) == ("queued", None, {"yielded": 1})
    # A kill switch over every tenant runs as one run (not split into units): claimed first.
    kill = jobs.claim(engine, "w")
    assert kill is not None and kill.priority == jobs.PRIORITY_KILL_SWITCH and not kill.splits


def test_two_disables_of_one_scope_at_once_keep_one_and_fail_neither(
    engine: Engine, world: dict[str, Any]
) -> None:
    """Both find nothing held; the second waits on the first's insert and inserts nothing (it
    was an integrity error before)."""
    from concurrent.futures import ThreadPoolExecutor

    from claresia_sync.db.models import SkillDisabled
    from claresia_sync.publish import kill_switch

    with Session(engine) as first:
        one = kill_switch.disable(first, SKILL, None, reason="first", by="a")
        with ThreadPoolExecutor(1) as pool:

            def second() -> kill_switch.Switched:
                with Session(engine) as s:
                    done = kill_switch.disable(s, SKILL, None, reason="second", by="b")
                    s.commit()
                    return done

            waiting = pool.submit(second)
            time.sleep(0.5)  # the second is waiting on the first's uncommitted row
            assert not waiting.done()
            first.commit()
            two = waiting.result(timeout=30)
    assert one.changed and not two.changed
    with Session(engine) as s:
        rows = s.scalars(select(SkillDisabled).where(SkillDisabled.skill_id == SKILL)).all()
    assert [(r.reason, r.disabled_by) for r in rows] == [("first", "a")]


def _switch(engine: Engine, verb: str) -> None:
    """`skill disable|enable SKILL` for every tenant, its job run here."""
    with Session(engine) as s:
        if verb == "disable":
            switched = kill_switch.disable(s, SKILL, None, reason="r", by="test")
        else:
            switched = kill_switch.enable(s, SKILL, None, by="test")
        s.commit()
    job = jobs.claim(engine, "test", switched.job_id)
    assert job is not None
    assert asyncio.run(run_job(engine, job, concurrency=4)).status == "succeeded"


def _release_two(engine: Engine, tmp_path: Path) -> None:
    """Release 2, current: meeting-summary's summary changed, nothing else."""
    folder = tmp_path / "catalog-2"
    shutil.copytree(CATALOG, folder)
    path = folder / f"{SKILL}.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "summary": NEW_SUMMARY}))
    with Session(engine) as s:
        assert import_catalog(s, load_catalog([folder]).skills).release == 2
        s.commit()


def test_a_release_made_while_the_skill_is_off_reaches_no_organisation_until_enabled(
    engine: Engine, emulator: EmulatorServer, world: dict[str, Any], tmp_path: Path
) -> None:
    """The claude-enterprise plugin kept `not_available` gets no new version of a release made
    while it is off (its content would sit in the customer's organisation); `enable` gives
    back the same plugin with the current release's content."""
    assert publish(engine).status == "succeeded"
    plugin_before, _ = _ferretti_plugin(emulator)
    _switch(engine, "disable")
    assert not any(_seen_anywhere(emulator).values())
    _release_two(engine, tmp_path)

    emulator.stats.reset()
    assert publish(engine).status == "succeeded"
    assert publish(engine, force=True).status == "succeeded"
    assert emulator.stats.writes() == 0, emulator.stats.to_json()  # no upload, no create
    assert versions(emulator, "ferretti") == 1
    assert NEW_SUMMARY not in remote_skill_md(emulator, "ferretti")
    assert not any(_seen_anywhere(emulator).values())

    _switch(engine, "enable")
    assert all(_seen_anywhere(emulator).values()), _seen_anywhere(emulator)
    assert _ferretti_plugin(emulator)[0].id == plugin_before.id
    assert versions(emulator, "ferretti") == 2
    for tenant in ("acme", "dainese", "ferretti", "vespucci"):
        assert NEW_SUMMARY in remote_skill_md(emulator, tenant), tenant


def test_a_skill_off_before_it_was_ever_published_is_not_created_until_enabled(
    engine: Engine, emulator: EmulatorServer, world: dict[str, Any]
) -> None:
    _switch(engine, "disable")
    assert publish(engine).status == "succeeded"
    assert publish(engine, force=True).status == "succeeded"
    with client(emulator) as sdk:
        plugins = {p.name for p in sdk.beta.organization.plugins.list(limit=100)}
    assert plugins and f"claresia-ferretti-{SKILL}" not in plugins  # the others are there
    assert not any(SKILL in n for n in _org_skills(emulator, "org_dainese"))
    assert not any(_seen_anywhere(emulator).values())
    _switch(engine, "enable")
    assert all(_seen_anywhere(emulator).values()), _seen_anywhere(emulator)


def test_the_kill_switch_job_does_the_kill_and_nothing_else(
    engine: Engine, emulator: EmulatorServer, world: dict[str, Any]
) -> None:
    """A change pending for the tenants (a revoked grant) waits for its own job."""
    assert publish(engine).status == "succeeded"
    data = copy.deepcopy(world)
    data["tenants"][0]["sub_tenants"][0]["archetypes"][0]["grants"].remove("sql-query-helper")
    apply(engine, data)  # only dainese-eng's engineers had it: pending, not yet published
    revoked = "claresia-dainese-eng-sql-query-helper"

    _switch(engine, "disable")
    assert not any(_seen_anywhere(emulator).values())
    assert revoked in _org_skills(emulator, "org_dainese")  # not the kill switch's business
    with Session(engine) as s:
        kill = s.scalars(select(PublishJob).order_by(PublishJob.id.desc())).first()
    assert kill is not None and kill.priority == jobs.PRIORITY_KILL_SWITCH
    assert kill.stats["deleted"] == 4 and kill.stats["acl"] == 1  # 3 org-skills, 1 workspace
    assert publish(engine).status == "succeeded"
    assert revoked not in _org_skills(emulator, "org_dainese")
    assert not any(_seen_anywhere(emulator).values())
