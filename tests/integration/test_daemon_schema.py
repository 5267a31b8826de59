"""`run` and the schema (issue 13 item 5): an unmigrated database is refused at start with the
one line every command prints; `run --migrate` migrates first; /readyz is never 200 without it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx2
from sqlalchemy import text

from claresia_sync.db import make_engine
from claresia_sync.errors import ExitCode
from tests.cli import clean_env, run_cli
from tests.fixtures.daemon import DaemonProcess, daemon_environment, wait_until


def test_run_refuses_an_unmigrated_database_in_one_line(make_database: Callable[[], str]) -> None:
    env = clean_env(CLARESIA_DATABASE_URL=make_database())
    done = run_cli("run", "--ops-host", "127.0.0.1", "--ops-port", "0", env=env, timeout=60)
    assert done.returncode == ExitCode.ERROR
    [line] = done.stderr.strip().splitlines()
    other = run_cli("tenants", "list", env=env, timeout=60)
    [other_line] = other.stderr.strip().splitlines()
    # the same sentence as every other command, with the daemon's own way out
    start = "claresia-sync: error: the database lacks this version's schema ("
    assert line.startswith(start) and other_line.startswith(start)
    assert (
        "run `claresia-sync db upgrade`" in line and "run `claresia-sync db upgrade`" in other_line
    )
    assert line.endswith("or start it with `claresia-sync run --migrate`")


def test_run_migrate_then_ready_only_while_the_schema_is_there(
    make_database: Callable[[], str], tmp_path: Path
) -> None:
    url = make_database()
    env = daemon_environment(url, tmp_path)
    daemon = DaemonProcess(env, "--migrate", "--poll-interval", "1")
    try:
        wait_until(lambda: daemon.get("/readyz") == 200, 15, "readiness after --migrate")
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE alembic_version RENAME TO alembic_version_away"))
        wait_until(lambda: daemon.get("/readyz") == 503, 10, "not ready without the schema")
        body = httpx2.get(f"http://127.0.0.1:{daemon.port}/readyz", timeout=2).json()
        assert "lacks this version's schema" in body["reason"], body
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE alembic_version_away RENAME TO alembic_version"))
        wait_until(lambda: daemon.get("/readyz") == 200, 10, "ready again with the schema")
        engine.dispose()
    finally:
        code, _ = daemon.stop()
    assert code == 0
    records = daemon.logs()
    migrated = [r for r in records if str(r["event"]).startswith("schema migrated")]
    assert len(migrated) == 1, [r["event"] for r in records]
    # one warning for the lost schema, not a line per check or per piece of work
    lost = [r for r in records if r["level"] in ("warning", "error")]
    assert len(lost) == 1 and "lacks this version's schema" in str(lost[0]["event"]), lost
    chatter = ("alembic", "claresia_sync.scheduler", "apscheduler")
    routine = [r for r in records if r["level"] == "info" and str(r["logger"]).startswith(chatter)]
    assert not routine, json.dumps(routine[:3])
