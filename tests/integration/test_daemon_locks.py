"""Advisory locks between replicas, on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import Engine, text

from claresia_sync.db.locks import advisory_locks, try_advisory_lock


def test_a_lock_is_held_by_one_session_at_a_time(engine: Engine) -> None:
    with try_advisory_lock(engine, "poll-org", "org_dainese") as first:
        assert first
        with try_advisory_lock(engine, "poll-org", "org_dainese") as second:
            assert not second
        with try_advisory_lock(engine, "publish-tenant", "org_dainese") as other_kind:
            assert other_kind  # namespaces keep kinds apart
    with try_advisory_lock(engine, "poll-org", "org_dainese") as again:
        assert again


def test_a_dead_holder_releases_its_lock(engine: Engine) -> None:
    with engine.connect() as holder:
        holder.execute(text("SELECT pg_advisory_lock(7301, hashtext('org_acme'))"))
        pid = holder.execute(text("SELECT pg_backend_pid()")).scalar_one()
        holder.commit()
        with try_advisory_lock(engine, "poll-org", "org_acme") as got:
            assert not got
        with engine.connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
        holder.invalidate()
    with try_advisory_lock(engine, "poll-org", "org_acme") as got:
        assert got


def test_advisory_locks_take_all_or_none_and_wait_without_blocking(engine: Engine) -> None:
    async def scenario() -> None:
        with try_advisory_lock(engine, "publish-tenant", "acme") as held:
            assert held
            async with advisory_locks(
                engine, "publish-tenant", ["dainese", "acme"], wait=False
            ) as got:
                assert not got  # acme is taken: not all held
            with try_advisory_lock(engine, "publish-tenant", "dainese") as free:
                assert free  # dainese was not kept by the failed attempt
            started = time.monotonic()
            waiter = asyncio.create_task(_hold(engine, ["acme", "dainese"]))
            await asyncio.sleep(0.5)
            assert not waiter.done()  # waiting, and the event loop still runs
        assert await waiter  # released above: the waiter gets both
        assert time.monotonic() - started >= 0.5
        with try_advisory_lock(engine, "publish-tenant", "acme") as again:
            assert again  # and released them at the end of its block

    asyncio.run(scenario())


async def _hold(engine: Engine, names: list[str]) -> bool:
    async with advisory_locks(engine, "publish-tenant", names, wait=True) as got:
        return got
