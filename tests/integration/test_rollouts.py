"""Rollouts (issue 22; docs/releases.md): a release moved to the tenants in waves by the daemon,
halted when a guardrail trips, rolled back on every target, and resumed after a SIGKILL without
twins or skipped tenants. Real PostgreSQL, the emulator, the daemon and the CLI as processes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from claresia_sync.emulator import EmulatorServer
from claresia_sync.ir import SkillIR
from claresia_sync.rollout.view import describe
from claresia_sync.transpile import transpile
from tests.cli import run_cli
from tests.fixtures.center import CenterProcess
from tests.fixtures.daemon import DaemonProcess, wait_until
from tests.fixtures.world import snapshot

pytestmark = pytest.mark.timeout(600)

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "skills_ir" / "catalog"
SKILL = "meeting-summary"  # acme, dainese (org-skills), ferretti (claude-enterprise), vespucci
NEW_SUMMARY = "Turns meeting notes into a TL;DR, decisions and owners (release two)."
OLD_SUMMARY = json.loads((CATALOG / f"{SKILL}.json").read_text())["summary"]
ROOTS = ("acme", "dainese", "ferretti", "vespucci")
# Where each root tenant's meeting-summary lives: (organisation, target of its publication row)
PLACES = {
    "acme": ("org_acme", "org-skills"),
    "dainese": ("org_dainese", "org-skills"),
    "ferretti": ("org_ferretti", "claude-enterprise"),
    "vespucci": ("org_vespucci", "claude-api:wrkspc_vespucci_support"),
}
# The emulator dates an audit event up to 3 s back: later than that, all are the new content's.
EVENT_SKEW_S = 3.5
FAST = {"CLARESIA_ROLLOUT_INTERVAL": "0.5", "CLARESIA_JOB_STALE_AFTER_S": "3"}


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env=env)


def ok(env: dict[str, str], *args: str) -> str:
    done = cli(env, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def status(env: dict[str, str]) -> dict[str, Any]:
    done = cli(env, "rollout", "status", "--json")
    assert done.returncode in (0, 3), done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def watch(engine: Engine) -> dict[str, Any]:
    """What `rollout status --json` prints, read in this process: the waits poll this, as a
    CLI process per poll cost seconds of CPU each beside the daemon (test_rollouts was 11% of
    the suite); `status` is still read through the CLI once each wait is over."""
    with Session(engine) as session:
        result: dict[str, Any] = json.loads(json.dumps(describe(session, None), default=str))
    return result


def release_two(env: dict[str, str], tmp_path: Path) -> None:
    """Everyone published on release 1, then release 2 (meeting-summary's summary changed)
    imported held: nobody is on it until a rollout moves them."""
    ok(env, "republish", "--all")
    folder = tmp_path / "catalog-2"
    shutil.copytree(CATALOG, folder)
    path = folder / f"{SKILL}.json"
    raw = json.loads(path.read_text())
    raw["summary"] = NEW_SUMMARY
    path.write_text(json.dumps(raw, indent=2))
    assert "release 2" in ok(env, "catalog", "import", str(folder), "--hold")


def content_hash(tenant: str, summary: str) -> str:
    raw = json.loads((CATALOG / f"{SKILL}.json").read_text())
    return transpile(SkillIR.model_validate({**raw, "summary": summary}), tenant).content_hash


def recorded(engine: Engine) -> dict[str, str]:
    """Root tenant -> the recorded content hash of its meeting-summary on its target."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT t.slug, p.target, p.content_hash FROM publication p "
                "JOIN tenant t ON t.id = p.tenant_id WHERE p.skill_id = :s"
            ),
            {"s": SKILL},
        ).all()
    return {slug: h for slug, target, h in rows if PLACES.get(slug, ("", ""))[1] == target}


def remote_skill_md(emulator: EmulatorServer, tenant: str) -> str:
    """The SKILL.md the organisation serves for the tenant's meeting-summary, on its target."""
    org_id, target = PLACES[tenant]
    name = f"claresia-{tenant}-{SKILL}"
    state = emulator.state
    with state.lock:
        org = state.orgs[org_id]
        if target == "org-skills":
            [record] = [r for r in org.skills.values() if r.name == name]
            return next(f["content"] for f in record.files if f["path"].endswith("SKILL.md"))
        if target == "claude-enterprise":
            assert org.plugins is not None
            [plugin] = [p for p in org.plugins.plugins.values() if p.name == name]
            files = plugin.served.content.files
        else:
            [skill] = [
                s
                for w in org.workspace_skills.values()
                for s in w.skills.values()
                if s.name == name
            ]
            files = skill.versions[-1].files
        return next(c.decode() for p, c in files if p.endswith("SKILL.md"))


def versions(emulator: EmulatorServer, tenant: str) -> int:
    """How many versions the tenant's meeting-summary has where versions are kept."""
    org_id, target = PLACES[tenant]
    name = f"claresia-{tenant}-{SKILL}"
    with emulator.state.lock:
        org = emulator.state.orgs[org_id]
        if target == "claude-enterprise":
            assert org.plugins is not None
            return next(len(p.versions) for p in org.plugins.plugins.values() if p.name == name)
        return next(
            len(s.versions)
            for w in org.workspace_skills.values()
            for s in w.skills.values()
            if s.name == name
        )


def pins(engine: Engine) -> dict[str, int | None]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT slug, release FROM tenant WHERE parent_id IS NULL"))
        return {slug: release for slug, release in rows}


def write_plan(tmp_path: Path, body: str) -> str:
    path = tmp_path / "plan.yaml"
    path.write_text(body)
    return str(path)


def test_first_wave_failing_trips_the_guardrail_and_the_second_wave_is_untouched(
    start_daemon: Callable[..., DaemonProcess],
    daemon_env: dict[str, str],
    engine: Engine,
    emulator: EmulatorServer,
    tmp_path: Path,
) -> None:
    release_two(daemon_env, tmp_path)
    before = recorded(engine)
    plan = write_plan(
        tmp_path,
        "guardrails: {min_invocations: 20, max_failure_rate_increase: 10%}\n"
        "waves:\n"
        "  - {name: canary, tenants: [acme], soak: 1h}\n"
        "  - {name: rest, share: 100%, soak: 0s}\n",
    )
    daemon = start_daemon(env=FAST)
    started = json.loads(ok(daemon_env, "rollout", "start", "2", "--plan", plan, "--json"))
    assert started["status"] == "running"
    assert [[t["tenant"] for t in w["tenants"]] for w in started["waves"]] == [
        ["acme"],
        ["dainese", "ferretti", "vespucci"],
    ]
    wait_until(lambda: watch(engine)["waves"][0]["status"] == "soaking", 90, "acme live")
    assert status(daemon_env)["waves"][0]["status"] == "soaking"
    assert recorded(engine)["acme"] == content_hash("acme", NEW_SUMMARY)
    assert NEW_SUMMARY in remote_skill_md(emulator, "acme")
    time.sleep(EVENT_SKEW_S)

    # The new content fails 60% of the time at acme; the old one 5% at dainese, same window.
    emulator.state.generate_invocations(
        "org_acme", 60, failure_rate=0.6, skill=f"claresia-acme-{SKILL}", seed=1
    )
    emulator.state.generate_invocations(
        "org_dainese", 60, failure_rate=0.05, skill=f"claresia-dainese-{SKILL}", seed=2
    )
    wait_until(lambda: watch(engine)["status"] == "halted", 90, "the rollout halted")

    halted = cli(daemon_env, "rollout", "status")
    assert halted.returncode == 3  # scripts see a halted rollout
    assert "halted: wave 1 (canary): meeting-summary: the new content failed" in " ".join(
        halted.stdout.split()
    )
    view = status(daemon_env)
    readings = {s["skill_id"]: s for s in view["halt_readings"]["skills"]}
    ms = readings[SKILL]
    assert ms["new_invocations"] >= 20 and ms["new_failure_rate"] > 0.4
    assert ms["old_from"] == "same window" and ms["old_failure_rate"] < 0.2
    # The second wave: not pinned, no job, nothing published.
    wave2 = view["waves"][1]
    assert wave2["status"] == "pending" and wave2["started_at"] is None
    assert all(t["moved_at"] is None and t["job_id"] is None for t in wave2["tenants"])
    assert pins(engine) == {"acme": 2, "dainese": None, "ferretti": None, "vespucci": None}
    after = recorded(engine)
    for tenant in ("dainese", "ferretti", "vespucci"):
        assert after[tenant] == before[tenant] == content_hash(tenant, OLD_SUMMARY), tenant
        assert NEW_SUMMARY not in remote_skill_md(emulator, tenant)
    with engine.connect() as conn:
        jobs = conn.execute(
            text("SELECT count(*) FROM publish_job WHERE requested_by LIKE 'rollout %'")
        ).scalar_one()
    assert jobs == 1

    # The alert's metric, and it stays halted: the daemon does not advance it by itself.
    metrics = httpx2.get(f"http://127.0.0.1:{daemon.port}/metrics", timeout=5).text
    assert re.search(r'^claresia_rollout_halted\{release="2",rollout="\d+"\} 1\.0$', metrics, re.M)
    assert status(daemon_env)["status"] == "halted"


def test_rollback_restores_the_previous_content_on_all_three_targets(
    start_daemon: Callable[..., DaemonProcess],
    daemon_env: dict[str, str],
    engine: Engine,
    emulator: EmulatorServer,
    tmp_path: Path,
) -> None:
    release_two(daemon_env, tmp_path)
    old = {t: content_hash(t, OLD_SUMMARY) for t in ROOTS}
    assert recorded(engine) == old
    plan = write_plan(
        tmp_path,
        "guardrails: {min_invocations: 0}\nwaves:\n  - {name: everyone, share: 100%, soak: 0s}\n",
    )
    start_daemon(env=FAST)
    ok(daemon_env, "rollout", "start", "2", "--plan", plan)
    wait_until(lambda: watch(engine)["status"] == "completed", 120, "the rollout done")
    assert status(daemon_env)["status"] == "completed"
    assert recorded(engine) == {t: content_hash(t, NEW_SUMMARY) for t in ROOTS}
    for tenant in ROOTS:
        assert NEW_SUMMARY in remote_skill_md(emulator, tenant), tenant

    back = json.loads(ok(daemon_env, "rollout", "rollback", "--json"))
    assert back["status"] == "rolled_back"
    assert pins(engine) == dict.fromkeys(ROOTS)  # following the current release (1) again

    def done() -> bool:
        tenants = watch(engine)["waves"][0]["tenants"]
        return all(t["rollback_job_status"] == "succeeded" for t in tenants)

    wait_until(done, 120, "every rollback job succeeded")
    tenants = status(daemon_env)["waves"][0]["tenants"]  # and the CLI says so
    assert all(t["rollback_job_status"] == "succeeded" for t in tenants), tenants
    assert recorded(engine) == old
    for tenant in ROOTS:
        md = remote_skill_md(emulator, tenant)
        assert NEW_SUMMARY not in md and OLD_SUMMARY in md, tenant
    # A plugin and a Skills API skill cannot go back to an older version: the old content is
    # published as a third version (create, rollout, rollback).
    assert versions(emulator, "ferretti") == versions(emulator, "vespucci") == 3
    with engine.connect() as conn:
        last = dict(
            conn.execute(
                text(
                    "SELECT DISTINCT ON (tenant_slug) tenant_slug, content_hash "
                    "FROM publication_history WHERE skill_id = :s "
                    "AND tenant_slug IN ('acme', 'dainese', 'ferretti', 'vespucci') "
                    "ORDER BY tenant_slug, at DESC, id DESC"
                ),
                {"s": SKILL},
            ).all()
        )
    assert last == old


def test_sigkill_in_the_middle_of_a_wave_resumes_without_twins_or_skipped_tenants(
    start_daemon: Callable[..., DaemonProcess],
    daemon_env: dict[str, str],
    engine: Engine,
    emulator: EmulatorServer,
    tmp_path: Path,
) -> None:
    release_two(daemon_env, tmp_path)
    plan = write_plan(
        tmp_path,
        "guardrails: {min_invocations: 0}\n"
        "waves:\n"
        "  - {name: first, count: 1, soak: 0s}\n"
        "  - {name: rest, share: 100%, soak: 0s}\n",
    )
    emulator.set_faults(latency_ms=1500)  # every call slow: the kill lands inside a wave
    first = start_daemon(env=FAST)
    ok(daemon_env, "rollout", "start", "2", "--plan", plan)

    def mid_wave_two() -> bool:
        with engine.connect() as conn:
            jobs = (
                conn.execute(
                    text(
                        "SELECT j.status FROM rollout_tenant rt "
                        "JOIN publish_job j ON j.id = rt.job_id"
                        " WHERE rt.wave = 2"
                    )
                )
                .scalars()
                .all()
            )
        return "running" in jobs

    wait_until(mid_wave_two, 120, "the second wave publishing")
    first.kill()
    left = status(daemon_env)
    assert left["status"] == "running" and left["wave"] == 2
    assert left["waves"][1]["status"] == "publishing"
    start_daemon(env=FAST)
    wait_until(lambda: watch(engine)["status"] == "completed", 180, "the rollout done")
    emulator.set_faults()

    view = status(daemon_env)
    assert view["status"] == "completed"
    assert [w["status"] for w in view["waves"]] == ["passed", "passed"]
    assert sorted(t["tenant"] for w in view["waves"] for t in w["tenants"]) == list(ROOTS)
    assert pins(engine) == dict.fromkeys(ROOTS, 2)
    assert recorded(engine) == {t: content_hash(t, NEW_SUMMARY) for t in ROOTS}
    with engine.connect() as conn:
        per_tenant = dict(
            conn.execute(
                text(
                    "SELECT t.slug, count(*) FROM publish_job j JOIN tenant t "
                    "ON t.id = j.tenant_id WHERE j.requested_by LIKE 'rollout %' GROUP BY t.slug"
                )
            ).all()
        )
    assert per_tenant == dict.fromkeys(ROOTS, 1)  # one job each: none queued twice
    world = snapshot(engine, emulator)
    assert not world.twins, world.twins


def test_the_operator_api_starts_watches_halts_and_rolls_back(
    center: Callable[..., CenterProcess],
    daemon_env: dict[str, str],
    engine: Engine,
    emulator: EmulatorServer,
    tmp_path: Path,
) -> None:
    release_two(daemon_env, tmp_path)
    c = center(env=FAST)
    op, viewer = c.operator_token, c.viewer_token
    releases = c.api("GET", "/releases", viewer).json()
    assert [(r["number"], r["current"]) for r in releases] == [(1, True), (2, False)]

    bad = c.api(
        "POST", "/rollouts", op, json={"release": 2, "plan": "waves: [{share: 2%, count: 1}]"}
    )
    assert bad.status_code == 422
    assert "plan: waves[0]: a wave names its tenants" in bad.json()["error"]["message"]
    refused = c.api("POST", "/rollouts", viewer, json={"release": 2})
    assert refused.status_code == 403
    plan = (
        "guardrails: {min_invocations: 20, max_failure_rate_increase: 10%}\n"
        "waves: [{name: canary, tenants: [acme], soak: 1h}, {name: rest, share: 100%}]\n"
    )
    answer = c.api("POST", "/rollouts", op, json={"release": 2, "plan": plan})
    assert answer.status_code == 202, answer.text
    rollout_id = answer.json()["rollout"]["id"]
    again = c.api("POST", "/rollouts", op, json={"release": 2})
    assert again.status_code == 409 and "one rollout at a time" in again.json()["error"]["message"]

    def view() -> dict[str, Any]:
        found: dict[str, Any] = c.api("GET", f"/rollouts/{rollout_id}", viewer).json()
        return found

    wait_until(lambda: view()["waves"][0]["status"] == "soaking", 90, "acme live")
    assert "waiting for 20 new-content invocations" in view()["next_step"]
    time.sleep(EVENT_SKEW_S)
    emulator.state.generate_invocations(
        "org_acme", 60, failure_rate=0.7, skill=f"claresia-acme-{SKILL}", seed=3
    )
    emulator.state.generate_invocations(
        "org_dainese", 60, failure_rate=0.0, skill=f"claresia-dainese-{SKILL}", seed=4
    )
    wait_until(lambda: view()["status"] == "halted", 90, "the rollout halted")
    halted = view()
    assert halted["halt_reason"].startswith("wave 1 (canary): meeting-summary: the new content")
    assert halted["next_step"].startswith("halted: ")
    assert [t["job_id"] for t in halted["waves"][1]["tenants"]] == [None, None, None]
    assert [r["id"] for r in c.api("GET", "/rollouts", viewer).json()] == [rollout_id]

    assert c.api("POST", f"/rollouts/{rollout_id}/rollback", viewer).status_code == 403
    back = c.api("POST", f"/rollouts/{rollout_id}/rollback", op)
    assert back.status_code == 202, back.text
    assert back.json()["rollout"]["status"] == "rolled_back"

    def rolled_back() -> bool:
        [acme] = view()["waves"][0]["tenants"]
        return bool(acme["rollback_job_status"] == "succeeded")

    wait_until(rolled_back, 90, "acme's rollback job")
    assert recorded(engine)["acme"] == content_hash("acme", OLD_SUMMARY)
    assert NEW_SUMMARY not in remote_skill_md(emulator, "acme")
    # Every verb is in the action log, the refused ones too.
    log = [(a["action"], a["outcome"]) for a in c.api("GET", "/actions", viewer).json()]
    assert log[:3] == [
        ("rollout.rollback", "ok"),
        ("rollout.rollback", "refused"),
        ("rollout.start", "refused"),
    ]
    assert c.api("POST", f"/rollouts/{rollout_id}/promote", op).status_code == 409
    assert c.api("GET", "/rollouts/999", viewer).status_code == 404


def _import(env: dict[str, str], tmp_path: Path, summary: str, *flags: str) -> str:
    """The example catalog with meeting-summary's summary changed, imported (a new release)."""
    folder = tmp_path / f"catalog-{summary[:8]}"
    shutil.copytree(CATALOG, folder)
    path = folder / f"{SKILL}.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "summary": summary}))
    return ok(env, "catalog", "import", str(folder), *flags)


def test_a_completed_rollout_leaves_its_tenants_following_the_current_release(
    daemon_env: dict[str, str], engine: Engine, tmp_path: Path
) -> None:
    """Pinned after the last wave, the next release made current would not reach them: they
    follow the current release once the release rolled out is it (at the end, or when it is
    made current later). No daemon: `promote` passes the waves, pins are what is judged."""
    env = daemon_env
    assert "release 2" in _import(env, tmp_path, NEW_SUMMARY, "--hold")
    plan = write_plan(
        tmp_path,
        "waves:\n  - {name: canary, tenants: [acme], soak: 0s}\n  - {name: rest, share: 100%}\n",
    )
    ok(env, "rollout", "start", "2", "--plan", plan)
    ok(env, "release", "current", "2")  # during the rollout: acme stays pinned until the end
    assert pins(engine) == {"acme": 2, "dainese": None, "ferretti": None, "vespucci": None}
    ok(env, "rollout", "promote")
    assert pins(engine) == dict.fromkeys(ROOTS, 2)
    done = json.loads(ok(env, "rollout", "promote", "--json"))
    assert done["status"] == "completed"
    assert pins(engine) == dict.fromkeys(ROOTS)
    assert done["next_step"].endswith("its tenants follow the current release (2)")
    # A rollback after that still finds them: back on release 1, pinned (2 is current).
    back = json.loads(ok(env, "rollout", "rollback", "--json"))
    assert back["status"] == "rolled_back" and pins(engine) == dict.fromkeys(ROOTS, 1)

    # A held release rolled out: pinned to it at the end, until it is made current.
    assert "release 3" in _import(env, tmp_path, "Third summary.", "--hold")
    ok(env, "rollout", "start", "3", "--plan", write_plan(tmp_path, "waves: [{share: 100%}]\n"))
    held = json.loads(ok(env, "rollout", "promote", "--json"))
    assert held["status"] == "completed" and pins(engine) == dict.fromkeys(ROOTS, 3)
    assert "stay pinned to it until `release current 3`" in held["next_step"]
    named = ok(env, "release", "current", "3")
    assert "now following the current release: acme, dainese, ferretti, vespucci" in named
    assert pins(engine) == dict.fromkeys(ROOTS)
    assert "release 4 (current)" in _import(env, tmp_path, "Fourth summary.")  # reaches all


def test_a_long_soak_reads_its_guardrails_once_its_window_grew_by_a_48th(
    daemon_env: dict[str, str], engine: Engine, tmp_path: Path
) -> None:
    """A reading costs the events of twice the window (bench/guardrails_read.py): a wave live
    for two days is read again an hour (2 days / 48) after its last reading, not every step."""
    from claresia_sync.rollout import advance

    assert "release 2" in _import(daemon_env, tmp_path, NEW_SUMMARY, "--hold")
    ok(
        daemon_env,
        "rollout",
        "start",
        "2",
        "--plan",
        write_plan(tmp_path, "waves: [{share: 100%, soak: 3d}]\n"),
    )

    def wave(sql: str = "") -> Any:
        with engine.begin() as conn:
            if sql:
                conn.execute(text(f"UPDATE rollout_wave SET {sql}"))
            return conn.execute(text("SELECT readings FROM rollout_wave")).scalar_one()

    wave(
        "status = 'soaking', started_at = now() - interval '2 days', "
        "live_at = now() - interval '2 days', readings = NULL"
    )
    first = advance.advance(engine)
    assert first is not None and first.event == "waiting", first
    read = wave()["until"]
    again = advance.advance(engine)
    assert again is not None and "not due for a reading" in again.message
    assert wave()["until"] == read
    wave(
        "readings = jsonb_set(readings, '{until}', to_jsonb((now() - interval '61 minutes')::text))"
    )
    assert advance.advance(engine) is not None and wave()["until"] > read
