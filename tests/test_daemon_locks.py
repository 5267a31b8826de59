"""Advisory locks between replicas, on a real PostgreSQL."""

from __future__ import annotations

from sqlalchemy import Engine, text

from claresia_sync.daemon.locks import try_advisory_lock


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
