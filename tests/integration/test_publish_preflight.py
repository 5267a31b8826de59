"""Pre-flight (issue 13 item 10): before any write, a tenant's workspaces and rbac groups are
checked against the organisation and the admin key's reach, by `republish --dry-run` (the
plan, and every publish) and by `connection test --tenant` (with `--json`, issue 13 item 8).
Each test failed on the code before: the plan was clean and the test said OK."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from typing import Any

from sqlalchemy import Engine

from claresia_sync.config import Settings
from claresia_sync.emulator import EmulatorServer
from claresia_sync.errors import ExitCode
from claresia_sync.publish import reconcile
from tests.cli import clean_env, run_cli
from tests.fixtures.emulator import ACME_KEY, DAINESE_ENGONLY_KEY, DAINESE_KEY
from tests.integration.test_publish_e2e import apply, world  # noqa: F401  (fixture)

UNREACHABLE = "wrkspc_dainese_corp"  # the ENGONLY key's principal is in engineering only


def cli(settings: Settings, *args: str, key: str = DAINESE_KEY) -> subprocess.CompletedProcess[str]:
    keys = {"CLARESIA_DAINESE_ADMIN_KEY": key, "CLARESIA_ACME_ADMIN_KEY": ACME_KEY}
    return run_cli(*args, env=clean_env(settings, **keys))


def test_the_plan_fails_skills_of_a_workspace_the_key_cannot_use(
    engine: Engine,
    emulator: EmulatorServer,
    world: dict[str, Any],  # noqa: F811
    monkeypatch: Any,
) -> None:
    monkeypatch.setenv("CLARESIA_DAINESE_ADMIN_KEY", DAINESE_ENGONLY_KEY)
    run = asyncio.run(reconcile(engine, "dainese", dry_run=True))
    failed = [i for i in run.plan.items() if i.op.value == "failed"]
    assert {i.tenant_slug for i in failed} == {"dainese", "dainese-corp"} and len(failed) == 8
    for item in failed:
        assert "not in organisation org_dainese (Dainese S.p.A.)" in item.reason, item
        assert "wrkspc_dainese_" in item.reason
    assert any(UNREACHABLE in i.reason for i in failed)
    creates = {i.tenant_slug for i in run.plan.items() if i.op.value == "create"}
    assert creates == {"dainese-eng"}
    assert emulator.stats.writes() == 0


def test_republish_dry_run_names_a_missing_rbac_group_and_the_organisation(
    engine: Engine,
    db_settings: Settings,
    emulator: EmulatorServer,
    world: dict[str, Any],  # noqa: F811
) -> None:
    world["tenants"][0]["archetypes"][0]["rbac_group"] = "rbac_group_dainese_nope"
    apply(engine, world)
    done = cli(db_settings, "republish", "--tenant", "dainese", "--dry-run")
    assert "rbac group(s) rbac_group_dainese_nope not in organisation org_dainese" in done.stdout
    assert "3 failed" in done.stdout.splitlines()[-1]
    assert emulator.stats.writes() == 0


def test_connection_test_checks_the_tenants_workspaces_and_groups(
    db_settings: Settings,
    engine: Engine,
    emulator: EmulatorServer,
    world: dict[str, Any],  # noqa: F811
) -> None:
    good = cli(db_settings, "connection", "test", "--tenant", "dainese")
    assert good.returncode == 0, good.stderr
    assert "Tenant access:  3 workspace(s), 4 rbac group(s) checked" in good.stdout

    narrow = cli(db_settings, "connection", "test", "--tenant", "dainese", key=DAINESE_ENGONLY_KEY)
    assert narrow.returncode == ExitCode.FAILURES, narrow.stderr
    last = narrow.stderr.strip().splitlines()[-1]
    assert last.startswith("claresia-sync: error: workspace(s) ")
    assert UNREACHABLE in last and "organisation org_dainese" in last
    assert "Connection OK" not in narrow.stdout

    world["tenants"][0]["sub_tenants"][0]["archetypes"][0]["rbac_group"] = "rbac_group_nope"
    apply(engine, world)
    group = cli(db_settings, "connection", "test", "--tenant", "dainese-eng")
    assert group.returncode == ExitCode.FAILURES
    assert "rbac group(s) rbac_group_nope not in organisation org_dainese" in group.stderr
    assert emulator.stats.writes() == 0


def test_connection_test_json(
    db_settings: Settings,
    emulator: EmulatorServer,
    world: dict[str, Any],  # noqa: F811
) -> None:
    good = cli(db_settings, "connection", "test", "--tenant", "acme", "--json")
    assert good.returncode == 0, good.stderr
    report = json.loads(good.stdout)
    assert report["ok"] is True and report["problems"] == []
    assert report["organization_id"] == "org_acme" and report["zero_data_retention"] is True
    assert report["access_checked"]["workspace_ids"]
    assert ACME_KEY not in good.stdout

    bad = cli(
        db_settings, "connection", "test", "--tenant", "dainese", "--json", key=DAINESE_ENGONLY_KEY
    )
    assert bad.returncode == ExitCode.FAILURES
    failed = json.loads(bad.stdout)
    assert failed["ok"] is False and UNREACHABLE in failed["problems"][0]


def test_the_org_skills_gate_reads_the_preflight_in_the_same_round_trip(
    engine: Engine,
    emulator: EmulatorServer,
    world: dict[str, Any],  # noqa: F811
) -> None:
    """The gate's three reads (organisation, workspaces, rbac groups) go at once: a dry run at
    1 s on each of them takes one latency, not three (3.9 s before)."""
    gate_reads = [
        "GET /v1/organizations/me",
        "GET /v1/organizations/workspaces",
        "GET /v1/organizations/rbac_groups",
    ]
    emulator.set_faults(latency_ms=1000, routes=gate_reads)
    emulator.stats.reset()
    started = time.perf_counter()
    run = asyncio.run(reconcile(engine, "dainese", dry_run=True))
    took = time.perf_counter() - started
    assert not run.refused and run.plan.orgs
    assert 1.0 <= took < 2.5, took
    assert emulator.stats.count("GET", "/v1/organizations/me") == 1
    assert emulator.stats.writes() == 0
