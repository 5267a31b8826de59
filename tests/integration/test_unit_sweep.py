"""The sweep of a split job (`publish/unit_sweep.py`): the units with nothing to do end in bulk,
with the stats a normal run of theirs records; a unit with work, or whose gate refuses, is left
to a run of its own; the queue's rules (the kill switch's priority, a cancel) still hold."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from claresia_sync.db.models import JobStatus
from claresia_sync.emulator import EmulatorServer
from claresia_sync.publish import jobs
from claresia_sync.publish.applier import CallBounds
from claresia_sync.publish.job_run import run_next_job, run_units
from claresia_sync.publish.unit_sweep import sweep_units
from tests.integration.test_job_units import ROOTS, _insert_all, _units
from tests.integration.test_publish_e2e import catalog_and_tenants


@pytest.fixture
def published(engine: Engine, emulator_env: EmulatorServer) -> EmulatorServer:
    """The example world, published once by a republish-all (every unit had work)."""
    catalog_and_tenants(engine, emulator_env)
    first = _insert_all(engine)
    outcome = asyncio.run(run_next_job(engine, worker="first"))
    assert outcome is not None and outcome.status == JobStatus.SUCCEEDED, outcome
    # A first publish has work everywhere: the sweep took no unit, each ran itself.
    assert {u.claimed_by for u in _units(engine, first)} == {"first"}
    emulator_env.stats.reset()
    return emulator_env


def _split(engine: Engine, *, force: bool = False) -> int:
    with Session(engine) as s:
        job_id = jobs.enqueue(s, None, force=force)
        s.commit()
    assert jobs.claim(engine, "splitter", job_id) is not None
    jobs.split(engine, job_id)
    return job_id


def _stale_hash(engine: Engine, tenant: str) -> None:
    """One publication of `tenant` says its content differs: its unit has an update to make."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE publication SET content_hash = 'stale' WHERE id = (SELECT p.id FROM "
                "publication p JOIN tenant t ON t.id = p.tenant_id WHERE t.slug = :slug "
                "AND p.status = 'published' ORDER BY p.id LIMIT 1)"
            ),
            {"slug": tenant},
        )


def test_a_no_op_republish_all_ends_every_unit_in_the_sweep_as_a_normal_run_would(
    engine: Engine, published: EmulatorServer
) -> None:
    swept = _insert_all(engine)
    seen: list[tuple[int, int]] = []
    outcome = asyncio.run(run_next_job(engine, worker="here", progress=lambda *p: seen.append(p)))
    assert outcome is not None and outcome.status == JobStatus.SUCCEEDED, outcome.errors
    assert seen[-1] == (4, 4)  # the command's progress bar: every unit ended in the sweep
    units = _units(engine, swept)
    assert [u.slug for u in units] == ROOTS
    assert {u.claimed_by for u in units} == {"here/sweep"} and {u.status for u in units} == {
        "succeeded"
    }
    assert published.stats.writes() == 0
    gates = published.stats.count()
    assert sum(int(u.stats["api_calls"]) for u in units) == gates == outcome.stats["api_calls"]

    # The same job without the sweep: every unit runs alone, and records the same numbers.
    plain = _split(engine)
    ran = asyncio.run(run_units(engine, plain, bounds=CallBounds(16), sweep=False, worker="one"))
    assert ran.status == JobStatus.SUCCEEDED
    normal = _units(engine, plain)
    assert {u.claimed_by for u in normal} == {"one"}
    assert [u.stats for u in normal] == [u.stats for u in units]
    assert units[0].stats["unchanged"] > 0 and units[0].stats["api_writes"] == 0
    assert ran.stats == outcome.stats


def test_a_unit_with_work_is_left_to_a_run_of_its_own(
    engine: Engine, published: EmulatorServer
) -> None:
    _stale_hash(engine, "dainese")
    job_id = _insert_all(engine)
    outcome = asyncio.run(run_next_job(engine, worker="here"))
    assert outcome is not None and outcome.status == JobStatus.SUCCEEDED, outcome.errors
    by_slug = {u.slug: u for u in _units(engine, job_id)}
    assert by_slug["dainese"].claimed_by == "here"  # put back by the sweep, then run
    assert by_slug["dainese"].stats["updated"] == 1
    assert {by_slug[s].claimed_by for s in ROOTS if s != "dainese"} == {"here/sweep"}
    assert outcome.stats["updated"] == 1 and published.stats.writes() > 0


def test_an_organisation_its_gate_refuses_is_left_to_its_run_which_says_why(
    engine: Engine, published: EmulatorServer
) -> None:
    with published.state.lock:  # acme's key revoked: its gate gets a 401
        del published.state.keys[os.environ["CLARESIA_ACME_ADMIN_KEY"]]
    job_id = _insert_all(engine)
    outcome = asyncio.run(run_next_job(engine, worker="here"))
    assert outcome is not None and outcome.status == JobStatus.PARTIAL
    by_slug = {u.slug: u for u in _units(engine, job_id)}
    assert (by_slug["acme"].claimed_by, by_slug["acme"].status) == ("here", "failed")
    assert {by_slug[s].status for s in ROOTS if s != "acme"} == {"succeeded"}
    assert any("401" in str(e["error"]) or "key" in str(e["error"]) for e in outcome.errors)


def test_a_force_job_is_not_swept(engine: Engine, published: EmulatorServer) -> None:
    forced = _insert_all(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE publish_job SET force = true WHERE id = :j"), {"j": forced})
    outcome = asyncio.run(run_next_job(engine, worker="here"))
    assert outcome is not None and outcome.job_id == forced
    assert outcome.status == JobStatus.SUCCEEDED, outcome.errors
    assert {u.claimed_by for u in _units(engine, forced)} == {"here"}  # each unit listed


def test_chunks_skip_what_they_left_and_a_chunk_that_ends_nothing_stops_the_sweep(
    engine: Engine, published: EmulatorServer
) -> None:
    async def sweep(job_id: int, chunk: int) -> tuple[int, int]:
        from claresia_sync.api.client import make_http_pool

        async with make_http_pool(max_connections=8, timeout=10) as http:
            done = await sweep_units(
                engine, job_id, worker="s", http=http, bounds=CallBounds(8), chunk=chunk
            )
        return done.ended, done.returned

    _stale_hash(engine, "dainese")
    mixed = _split(engine)
    # [acme, dainese]: acme ends, dainese goes back; [ferretti, vespucci]: both end; dainese is
    # not claimed again by the sweep.
    assert asyncio.run(sweep(mixed, 2)) == (3, 1)
    statuses = {u.slug: u.status for u in _units(engine, mixed)}
    assert statuses == {
        "acme": "succeeded",
        "dainese": "queued",
        "ferretti": "succeeded",
        "vespucci": "succeeded",
    }
    assert jobs.get_job(engine, mixed).status == JobStatus.RUNNING  # dainese still to run
    unit = jobs.claim(engine, "x", parent=mixed)
    assert unit is not None and unit.tenant_slug == "dainese"
    jobs.finish(engine, unit.id, JobStatus.SUCCEEDED, {}, [])
    assert jobs.get_job(engine, mixed).status == JobStatus.SUCCEEDED

    _stale_hash(engine, "acme")
    first_has_work = _split(engine)
    assert asyncio.run(sweep(first_has_work, 1)) == (0, 1)  # [acme] ended nothing: stop
    statuses = {u.slug: u.status for u in _units(engine, first_has_work)}
    assert set(statuses.values()) == {"queued"}


def test_the_sweep_keeps_the_queues_rules(engine: Engine, published: EmulatorServer) -> None:
    job_id = _split(engine)
    with Session(engine) as s:  # a kill switch's job queued on dainese
        kill = jobs.enqueue(s, "dainese", priority=jobs.PRIORITY_KILL_SWITCH)
        s.commit()
    taken = jobs.claim_units(engine, "s", job_id, 10)
    assert sorted(str(u.tenant_slug) for u in taken) == ["acme", "ferretti", "vespucci"]
    assert jobs.claim_units(engine, "s", job_id, 10) == []  # none left it may take

    # A cancel that reaches the units while the sweep holds them: they end cancelled, whether
    # found with nothing to do or put back; the split job ends with them.
    ids = [u.id for u in taken]
    assert jobs.cancel(engine, job_id) == JobStatus.RUNNING  # its swept units still "run"
    ended: dict[int, dict[str, Any]] = {ids[0]: {"unchanged": 3}}
    assert jobs.end_swept(engine, job_id, "s", ended, ids[1:]) == JobStatus.CANCELLED
    assert {u.status for u in _units(engine, job_id)} == {"cancelled"}
    # Units no longer the sweep's (requeued as stale, taken by another) are not touched.
    jobs.cancel(engine, kill)
    other = _split(engine)
    mine = jobs.claim_units(engine, "s", other, 1)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE publish_job SET claimed_by = 'someone' WHERE id = :j"), {"j": mine[0].id}
        )
    jobs.end_swept(engine, other, "s", {mine[0].id: {}}, [])
    row = next(u for u in _units(engine, other) if u.id == mine[0].id)
    assert (row.status, row.claimed_by) == ("running", "someone")


def test_organisations_never_published_are_not_swept(
    engine: Engine, emulator_env: EmulatorServer
) -> None:
    """A first publish has work everywhere: the sweep leaves its units alone at no cost."""
    catalog_and_tenants(engine, emulator_env)
    job_id = _split(engine)
    assert jobs.claim_units(engine, "s", job_id, 10) == []
    assert {u.status for u in _units(engine, job_id)} == {"queued"}
