"""A job over every tenant (republish-all, drift check) runs as one unit per organisation (root
tenant), claimable by any replica: the split job shows their progress and ends with the last
one; a SIGKILL costs one unit, not the run; calls are bounded per organisation as well as per
replica (`publish.job_units`, `publish.applier.CallBounds`)."""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from claresia_sync.center import operations
from claresia_sync.config import Settings
from claresia_sync.db.models import JobStatus
from claresia_sync.emulator import EmulatorServer
from claresia_sync.publish import jobs
from claresia_sync.publish.applier import CallBounds
from claresia_sync.publish.job_run import run_job, run_next_job
from tests.cli import clean_env, run_cli
from tests.fixtures.daemon import DaemonProcess, wait_until
from tests.fixtures.world import assert_exactly_once, snapshot
from tests.integration.test_publish_cli import cli
from tests.integration.test_publish_e2e import catalog_and_tenants

ROOTS = ["acme", "dainese", "ferretti", "vespucci"]  # the example tenants with a connection
KEY_VARIABLES = {
    "CLARESIA_DAINESE_ADMIN_KEY",
    "CLARESIA_ACME_ADMIN_KEY",
    "CLARESIA_FERRETTI_ENTERPRISE_KEY",
    "CLARESIA_VESPUCCI_SUPPORT_API_KEY",
}


@pytest.fixture
def world(engine: Engine, emulator_env: EmulatorServer) -> dict[str, Any]:
    return catalog_and_tenants(engine, emulator_env)


def _units(engine: Engine, parent: int) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT j.id, t.slug, j.status, j.claimed_by, j.stats, j.requested_at "
                    "FROM publish_job j JOIN tenant t ON t.id = j.tenant_id "
                    "WHERE j.parent_id = :p ORDER BY t.slug"
                ),
                {"p": parent},
            ).all()
        )


def _insert_all(engine: Engine) -> int:
    with engine.begin() as conn:
        return int(
            conn.execute(text("INSERT INTO publish_job DEFAULT VALUES RETURNING id")).one()[0]
        )


def test_a_job_over_every_tenant_is_split_and_ends_with_its_last_unit(
    engine: Engine, world: dict[str, Any]
) -> None:
    job_id = _insert_all(engine)
    claimed = jobs.claim(engine, "replica-a")
    assert claimed is not None and claimed.id == job_id and claimed.splits
    assert jobs.split(engine, job_id) == len(ROOTS)
    assert jobs.split(engine, job_id) == len(ROOTS)  # again (a replica died after it): no twin
    units = _units(engine, job_id)
    assert [u.slug for u in units] == ROOTS and {u.status for u in units} == {"queued"}
    view = jobs.get_job(engine, job_id)
    assert (view.status, view.units, view.claimed_by) == (JobStatus.RUNNING, 4, None)
    assert view.requested_at == units[0].requested_at  # a unit's lag counts from the request
    # The split job is never claimed, requeued or listed with its units.
    assert jobs.requeue_stale(engine, 0.0) == []
    assert [j.id for j in jobs.list_jobs(engine)] == [job_id]
    assert sorted(str(j.tenant) for j in jobs.list_jobs(engine, parent=job_id)) == ROOTS
    first = jobs.claim(engine, "replica-a")
    second = jobs.claim(engine, "replica-b")
    assert first is not None and second is not None
    assert (first.parent_id, second.parent_id) == (job_id, job_id)
    assert {first.tenant_slug, second.tenant_slug} == {"acme", "dainese"}  # slug order
    jobs.finish(engine, first.id, JobStatus.SUCCEEDED, {"created": 5, "api_calls": 12}, [])
    progress = jobs.get_job(engine, job_id)
    assert progress.status == JobStatus.RUNNING
    assert progress.stats["units"] == {
        "queued": 2,
        "running": 1,
        "succeeded": 1,
        "partial": 0,
        "failed": 0,
        "cancelled": 0,
        "total": 4,
    }
    error = {"org_id": "org_dainese", "error": "boom", "retryable": False}
    jobs.finish(
        engine,
        second.id,
        JobStatus.PARTIAL,
        {"created": 7, "failed": 1, "api_calls": 20, "publish_lag_s": 2.5},
        [error],
    )
    ended = []
    for worker in ("replica-a", "replica-b"):
        unit = jobs.claim(engine, worker)
        assert unit is not None
        stats = {"unchanged": 3, "api_calls": 1}
        ended.append(jobs.finish(engine, unit.id, JobStatus.SUCCEEDED, stats, []))
    assert ended == [None, JobStatus.PARTIAL]  # the last unit's finish ended the split job
    done = jobs.get_job(engine, job_id)
    assert done.status == JobStatus.PARTIAL and done.finished_at is not None
    assert (done.stats["created"], done.stats["failed"], done.stats["unchanged"]) == (12, 1, 6)
    assert (done.stats["api_calls"], done.stats["publish_lag_s"]) == (34, 2.5)
    assert done.stats["units"]["succeeded"] == 3 and done.stats["units"]["partial"] == 1
    assert done.errors == [error]
    assert jobs.claim(engine, "replica-a") is None


def test_cancelling_a_split_job_cancels_its_queued_units_and_stops_the_running_ones(
    engine: Engine, world: dict[str, Any]
) -> None:
    job_id = _insert_all(engine)
    assert jobs.claim(engine, "a") is not None
    jobs.split(engine, job_id)
    running = jobs.claim(engine, "a")
    assert running is not None
    assert jobs.cancel(engine, job_id) == JobStatus.RUNNING  # one unit still runs
    statuses = Counter(u.status for u in _units(engine, job_id))
    assert statuses == Counter({"cancelled": 3, "running": 1})
    assert jobs.heartbeat(engine, running.id)  # the running unit is told to stop
    jobs.finish(engine, running.id, JobStatus.CANCELLED, {"created": 1}, [])
    view = jobs.get_job(engine, job_id)
    assert view.status == JobStatus.CANCELLED and view.stats["created"] == 1
    # Retried, it is a new job over every tenant, split again when claimed.
    again = jobs.retry(engine, job_id)
    claimed = jobs.claim(engine, "a")
    assert claimed is not None and claimed.id == again and claimed.splits


def test_a_split_job_with_no_organisation_ends_at_once(engine: Engine) -> None:
    job_id = _insert_all(engine)
    assert jobs.claim(engine, "a") is not None
    assert jobs.split(engine, job_id) == 0
    assert jobs.get_job(engine, job_id).status == JobStatus.SUCCEEDED


def test_run_next_job_runs_every_unit_and_reports_the_whole_job(
    engine: Engine, emulator: EmulatorServer, world: dict[str, Any]
) -> None:
    job_id = _insert_all(engine)
    outcome = asyncio.run(run_next_job(engine, worker="here"))
    assert outcome is not None and outcome.job_id == job_id
    assert outcome.status == JobStatus.SUCCEEDED, outcome.errors
    units = _units(engine, job_id)
    assert {u.status for u in units} == {"succeeded"} and {u.claimed_by for u in units} == {"here"}
    assert outcome.stats["created"] == sum(int(u.stats["created"]) for u in units) == 25
    assert_exactly_once(snapshot(engine, emulator))


@pytest.mark.parametrize("per_org", [2, None])
def test_calls_in_flight_per_organisation_stay_within_its_bound(
    engine: Engine, emulator: EmulatorServer, world: dict[str, Any], per_org: int | None
) -> None:
    emulator.set_faults(latency_ms=100)  # so that calls overlap
    with Session(engine) as s:
        job_id = jobs.enqueue(s, None)
        s.commit()
    job = jobs.claim(engine, "here", job_id)
    assert job is not None
    outcome = asyncio.run(run_job(engine, job, bounds=CallBounds(16, per_org)))
    assert outcome.status == JobStatus.SUCCEEDED, outcome.errors
    peaks = emulator.stats.peak_in_flight()
    # dainese: 18 creates (each then its access) of one organisation, 4 units at once.
    if per_org is None:
        assert peaks["org_dainese"] > 2, peaks  # the measure sees overlap when nothing bounds it
    else:
        assert max(peaks.values()) == per_org, peaks  # reached, never passed


def test_republish_all_runs_the_units_itself_and_jobs_show_them(
    db_settings: Settings, engine: Engine, emulator: EmulatorServer, world: dict[str, Any]
) -> None:
    emulator.set_faults(latency_ms=50)
    keys = {k: v for k, v in os.environ.items() if k in KEY_VARIABLES}  # emulator_env's
    assert len(keys) == len(KEY_VARIABLES)
    env = clean_env(db_settings, CLARESIA_ORG_CONCURRENCY="2", **keys)
    result = run_cli("republish", "--all", env=env)
    assert result.returncode == 0, result.stderr
    assert max(emulator.stats.peak_in_flight().values()) == 2  # the setting, per organisation
    with engine.connect() as conn:
        job_id = conn.execute(text("SELECT id FROM publish_job WHERE units = 4")).scalar_one()
    assert f"publish job {job_id}" in result.stdout
    shown = cli(db_settings, "jobs", "show", str(job_id))
    assert "units (one per organisation): 4 of 4 ended (4 succeeded)" in shown.stdout, shown
    listed = json.loads(cli(db_settings, "jobs", "list", "--parent", str(job_id), "--json").stdout)
    assert sorted(u["tenant"] for u in listed) == ROOTS
    assert {u["parent_id"] for u in listed} == {job_id}
    assert all(str(u["claimed_by"]).startswith("cli-") for u in listed)  # no daemon ran
    top = json.loads(cli(db_settings, "jobs", "list", "--json").stdout)
    assert [(j["id"], j["units"]) for j in top] == [(job_id, 4)]
    progress = operations.job(engine, job_id)["progress"]
    assert (progress["done"], progress["total"], progress["of"]) == (4, 4, "organisation(s)")


def _ready(daemon: DaemonProcess) -> None:
    wait_until(lambda: daemon.get("/readyz") == 200, 15, "readiness")


def _run_rows(engine: Engine, parent: int) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT id, claimed_by, status FROM publish_job WHERE parent_id = :p "
                    "ORDER BY id"
                ),
                {"p": parent},
            ).all()
        )


def test_two_daemons_share_the_units_of_a_republish_all(
    start_daemon: Callable[..., DaemonProcess], engine: Engine, emulator: EmulatorServer
) -> None:
    emulator.set_faults(latency_ms=150)
    # One unit at a time each: a daemon that took every unit would take 4 x the time.
    first = start_daemon("--publish-workers", "1")
    second = start_daemon("--publish-workers", "1")
    for d in (first, second):
        _ready(d)
    job_id = _insert_all(engine)
    wait_until(
        lambda: jobs.get_job(engine, job_id).status in jobs.FINISHED, 60, "the republish-all"
    )
    view = jobs.get_job(engine, job_id)
    assert view.status == JobStatus.SUCCEEDED, view.errors
    units = _units(engine, job_id)
    assert [u.slug for u in units] == ROOTS and {u.status for u in units} == {"succeeded"}
    assert len({u.claimed_by for u in units}) == 2, [u.claimed_by for u in units]  # both worked
    assert view.stats["units"]["succeeded"] == 4 and view.stats["created"] == 25
    assert_exactly_once(snapshot(engine, emulator))  # every organisation published once
    # Again with nothing changed: the replica that splits it sweeps the units with nothing to
    # do (`unit_sweep`; the other may have taken one meanwhile), and nothing is written.
    emulator.stats.reset()
    again = _insert_all(engine)
    wait_until(lambda: jobs.get_job(engine, again).status in jobs.FINISHED, 60, "the no-op")
    assert jobs.get_job(engine, again).status == JobStatus.SUCCEEDED
    swept = [u for u in _units(engine, again) if str(u.claimed_by).endswith("/sweep")]
    assert len(swept) >= 3 and emulator.stats.writes() == 0, _units(engine, again)
    for d in (first, second):
        assert d.stop()[0] == 0


def test_a_sigkill_during_a_republish_all_costs_one_unit_not_the_run(
    start_daemon: Callable[..., DaemonProcess], engine: Engine, emulator: EmulatorServer
) -> None:
    emulator.set_faults(latency_ms=1500)  # every call: a unit runs for several seconds
    env = {"CLARESIA_JOB_STALE_AFTER_S": "2"}
    victim = start_daemon("--publish-workers", "1", env=env)
    survivor = start_daemon("--publish-workers", "1", env=env)
    for d in (victim, survivor):
        _ready(d)
    job_id = _insert_all(engine)
    mine = f"-{victim.proc.pid}"

    def victims_unit() -> list[Any]:
        return [
            r
            for r in _run_rows(engine, job_id)
            if r.status == "running" and str(r.claimed_by).endswith(mine)
        ]

    wait_until(lambda: bool(victims_unit()), 20, "a unit of the victim's")
    (lost,) = victims_unit()
    victim.kill()
    # The survivor queues the dead replica's unit again (stale heartbeat) and finishes the job.
    wait_until(
        lambda: jobs.get_job(engine, job_id).status in jobs.FINISHED, 120, "the republish-all"
    )
    view = jobs.get_job(engine, job_id)
    assert view.status == JobStatus.SUCCEEDED, view.errors
    rows = {r.id: r for r in _run_rows(engine, job_id)}
    assert len(rows) == 4 and {r.status for r in rows.values()} == {"succeeded"}
    assert not rows[lost.id].claimed_by.endswith(mine)  # taken over, by the survivor
    warnings = [str(r["event"]) for r in survivor.logs() if r.get("level") == "warning"]
    requeued = [m for m in warnings if "had no heartbeat" in m]
    assert len(requeued) == 1 and f"publish job {lost.id} of " in requeued[0], warnings
    assert view.stats["created"] == 25  # the lost unit's creates adopted, none made twice
    assert_exactly_once(snapshot(engine, emulator))
    assert survivor.stop()[0] == 0
