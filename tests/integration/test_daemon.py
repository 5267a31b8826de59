"""`claresia-sync run` as a real process against a real PostgreSQL and the emulator."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx2
import psycopg
from psycopg import sql
from sqlalchemy import Engine, text

from claresia_sync.emulator import EmulatorServer
from tests.cli import run_cli
from tests.fixtures.daemon import DaemonProcess, wait_until
from tests.fixtures.emulator import DAINESE_KEY

ROOT = Path(__file__).resolve().parents[2]


def _job(engine: Engine, job_id: int) -> tuple[str, object]:
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT status, stats FROM publish_job WHERE id = :i"), {"i": job_id}
        ).one()
    return row.status, row.stats


def _insert_job(engine: Engine, sql_text: str = "INSERT INTO publish_job DEFAULT VALUES") -> int:
    with engine.begin() as conn:
        return int(conn.execute(text(sql_text + " RETURNING id")).scalar_one())


def test_a_job_inserted_with_plain_sql_is_done_within_2s(
    start_daemon: Callable[..., DaemonProcess], engine: Engine, emulator: EmulatorServer
) -> None:
    # The fallback poll is set far beyond 2 s: only LISTEN/NOTIFY can make the deadline.
    daemon = start_daemon("--job-fallback-interval", "60")
    wait_until(lambda: daemon.get("/readyz") == 200, 15, "readiness")
    job_id = _insert_job(engine)
    wait_until(
        lambda: _job(engine, job_id)[0] in ("succeeded", "partial", "failed"),
        2.0,
        "the job to finish",
    )
    status, stats = _job(engine, job_id)
    assert status == "succeeded", stats
    assert emulator.state.visible_skills("org_dainese", "user_dainese_ana")  # published for real
    code, took = daemon.stop()
    assert code == 0 and took < 10


def test_sigterm_during_work_exits_cleanly_within_10s(
    start_daemon: Callable[..., DaemonProcess], engine: Engine, emulator: EmulatorServer
) -> None:
    daemon = start_daemon()
    emulator.set_faults(latency_ms=300)  # so that the job is still running at SIGTERM
    job_id = _insert_job(engine)
    wait_until(lambda: _job(engine, job_id)[0] != "queued", 5, "the job to be claimed")
    code, took = daemon.stop()
    assert code == 0
    assert took < 10
    messages = [str(r["event"]) for r in daemon.logs()]
    assert any("stopped" in m for m in messages), messages[-5:]


def test_two_daemons_share_work_without_overlap(
    start_daemon: Callable[..., DaemonProcess], engine: Engine, emulator: EmulatorServer
) -> None:
    first, second = start_daemon(), start_daemon()
    emulator.set_faults(latency_ms=20)
    ids = [
        _insert_job(engine, sql)
        for sql in [
            "INSERT INTO publish_job DEFAULT VALUES",
            "INSERT INTO publish_job (tenant_id) SELECT id FROM tenant WHERE slug = 'dainese'",
            "INSERT INTO publish_job (tenant_id, force) SELECT id, true FROM tenant "
            "WHERE slug = 'dainese-eng'",
            "INSERT INTO publish_job DEFAULT VALUES",
            "INSERT INTO publish_job (tenant_id) SELECT id FROM tenant WHERE slug = 'acme'",
        ]
    ]

    def done() -> bool:
        return all(_job(engine, i)[0] not in ("queued", "running") for i in ids)

    wait_until(done, 60, "all jobs")
    emulator.state.generate_invocations("org_dainese", 300, failure_rate=0.2, seed=7)
    emulator.set_faults(latency_ms=20, duplicate_rate=0.5)
    with engine.connect() as conn:
        # The runs: the jobs of one tenant, and the units of the jobs over every tenant (one
        # per root tenant, publish/job_units.py); a split job is no run of its own.
        rows = conn.execute(
            text(
                "SELECT j.id, j.claimed_by, j.started_at, j.finished_at, j.status, "
                "coalesce(t.parent_id, t.id) AS root, j.units FROM publish_job j "
                "LEFT JOIN tenant t ON t.id = j.tenant_id "
                "WHERE j.id = ANY(:ids) OR j.parent_id = ANY(:ids)"
            ),
            {"ids": ids},
        ).all()
    assert {r.status for r in rows} == {"succeeded"}
    assert sum(r.units is not None for r in rows) == 2  # both jobs over every tenant, split
    rows = [r for r in rows if r.units is None]
    # Jobs that cover the same root tenant (NULL = all tenants) never ran at the same time.
    for a in rows:
        for b in rows:
            if a.id < b.id and (a.root is None or b.root is None or a.root == b.root):
                assert a.finished_at <= b.started_at or b.finished_at <= a.started_at, (a, b)

    def ingested() -> int:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM telemetry_event")).scalar_one())

    wait_until(lambda: ingested() >= 300, 30, "300 events ingested")
    time.sleep(2.5)  # a few more polls by both replicas, with duplicate delivery on
    assert ingested() == 300
    for d in (first, second):
        assert d.stop()[0] == 0


def _block_database(database_url: str, blocked: bool) -> None:
    """Make the test database refuse and drop connections, as a database outage would."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False
    )
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
                sql.Identifier(str(url.database)), sql.SQL("false" if blocked else "true")
            )
        )
        if blocked:
            conn.execute(
                "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (url.database,),
            )


def test_daemon_rides_out_database_and_api_outages(
    start_daemon: Callable[..., DaemonProcess],
    engine: Engine,
    emulator: EmulatorServer,
    database_url: str,
) -> None:
    daemon = start_daemon("--job-fallback-interval", "2")
    wait_until(lambda: daemon.get("/readyz") == 200, 15, "readiness")
    first_job = _insert_job(engine)
    wait_until(lambda: _job(engine, first_job)[0] == "succeeded", 30, "the first publish")

    engine.dispose()
    _block_database(database_url, True)
    try:
        wait_until(lambda: daemon.get("/readyz") == 503, 40, "/readyz to report the outage")
        assert daemon.get("/healthz") == 200  # alive, just not ready
    finally:
        _block_database(database_url, False)
    wait_until(lambda: daemon.get("/readyz") == 200, 40, "recovery from the database outage")

    emulator.set_faults(rate_503=1.0)  # the API is down: every call fails
    emulator.state.generate_invocations("org_dainese", 50, failure_rate=0.0, seed=3)
    time.sleep(3)
    emulator.set_faults()  # the API is back
    job_id = _insert_job(engine)
    wait_until(lambda: _job(engine, job_id)[0] == "succeeded", 30, "a job after the outages")

    def ingested() -> int:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM telemetry_event")).scalar_one())

    wait_until(lambda: ingested() == 50, 30, "the events from during the API outage")
    assert daemon.stop()[0] == 0


def _published(engine: Engine, name: str) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(
                text("SELECT remote_skill_id FROM publication WHERE published_name = :n"),
                {"n": name},
            ).scalar_one()
        )


def test_drift_check_repairs_a_skill_deleted_behind_the_daemons_back(
    start_daemon: Callable[..., DaemonProcess], engine: Engine, emulator: EmulatorServer
) -> None:
    daemon = start_daemon("--drift-interval", "2")
    job_id = _insert_job(engine)
    wait_until(lambda: _job(engine, job_id)[0] == "succeeded", 30, "the first publish")
    name = "claresia-dainese-eng-incident-postmortem"
    remote_id = _published(engine, name)
    deleted = httpx2.delete(
        f"{emulator.base_url}/v1/organizations/org_dainese/skills/{remote_id}",
        headers={"x-api-key": DAINESE_KEY, "anthropic-version": "2023-06-01"},
    )
    assert deleted.status_code == 200

    def restored() -> bool:
        return name in {
            s.name for s in emulator.state.visible_skills("org_dainese", "user_dainese_ana")
        }

    assert not restored()
    wait_until(restored, 30, "the drift check to republish the deleted skill")
    assert daemon.stop()[0] == 0


def test_a_rotated_key_is_used_from_the_next_call_without_restart(
    daemon_env: dict[str, str], engine: Engine, emulator: EmulatorServer, tmp_path: Path
) -> None:
    key_file = tmp_path / "dainese.key"
    key_file.write_text(DAINESE_KEY + "\n")
    tenants = (
        (tmp_path / "tenants.yaml")
        .read_text()
        .replace("env:CLARESIA_DAINESE_ADMIN_KEY", f"file:{key_file}")
    )
    (tmp_path / "tenants.yaml").write_text(tenants)
    subprocess.run(
        [sys.executable, "-m", "claresia_sync", "tenants", "apply", str(tmp_path / "tenants.yaml")],
        env=daemon_env,
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    daemon = DaemonProcess(daemon_env, "--poll-interval", "1")
    try:
        job_id = _insert_job(engine)
        wait_until(lambda: _job(engine, job_id)[0] == "succeeded", 30, "the first publish")

        rotated = DAINESE_KEY.replace("DEMO", "ROTATED")
        emulator.state.add_admin_key("org_dainese", rotated)
        key_file.write_text(rotated + "\n")
        with emulator.state.lock:
            del emulator.state.keys[DAINESE_KEY]  # the old key is revoked: it would get a 401
        emulator.state.generate_invocations("org_dainese", 30, seed=11)

        def ingested() -> int:
            with engine.connect() as conn:
                return int(
                    conn.execute(
                        text("SELECT count(*) FROM telemetry_event WHERE org_id = 'org_dainese'")
                    ).scalar_one()
                )

        wait_until(lambda: ingested() == 30, 30, "events read with the rotated key")
        assert daemon.stop()[0] == 0
        log_text = daemon.log.read_text()
        assert DAINESE_KEY not in log_text and rotated not in log_text
    finally:
        if daemon.proc.poll() is None:
            daemon.proc.kill()


def test_status_shows_tenants_and_organisations(
    daemon_env: dict[str, str], emulator: EmulatorServer
) -> None:
    def cli(*args: str) -> str:
        done = run_cli(*args, env=daemon_env)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    cli("publish", "--tenant", "dainese", "--wait")
    emulator.state.generate_invocations("org_dainese", 12, seed=5)
    cli("telemetry", "poll", "--once", "--tenant", "dainese")
    env = {**daemon_env, "COLUMNS": "200"}
    out = subprocess.run(
        [sys.executable, "-m", "claresia_sync", "status"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 3}
    assert rows["dainese-eng"].split("│")[2].strip() == "5"  # live skills of the sub-tenant
    assert "succeeded" in rows["dainese"]
    assert "never" in rows["acme"]  # acme was not published
    org = rows["org_dainese"]
    assert "evt_" in org and "ok" in org and "12" in org
