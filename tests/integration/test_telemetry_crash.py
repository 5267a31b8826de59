"""Crash safety: a real poller process (`claresia-sync telemetry poll --once`) is SIGKILLed at
random moments while it ingests a 100,000-event backlog (with duplicate delivery on), restarted
each time, and in the end the table holds every event exactly once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import Engine

from claresia_sync.config import Settings
from claresia_sync.emulator import EmulatorServer
from tests.fixtures.emulator import DAINESE_ORG
from tests.integration.test_telemetry_poller import ENG_SKILL, SALES_SKILL, scalar, world

# SIGKILLs during a 100,000-event backlog, then the drain: 2.5 minutes at load 9 (-n 0).
pytestmark = pytest.mark.timeout(900)

__all__ = ["world"]  # the fixture, shared with the poller tests

BACKLOG = 100_000
KILLS = 8


def _poller(settings: Settings) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLARESIA_")}
    env.update(
        CLARESIA_DATABASE_URL=str(settings.database_url),
        CLARESIA_STATE_DIR=str(settings.state_dir),
        CLARESIA_DAINESE_ADMIN_KEY=os.environ["CLARESIA_DAINESE_ADMIN_KEY"],
    )
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "claresia_sync",
            "telemetry",
            "poll",
            "--once",
            "--tenant",
            "dainese",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_sigkill_at_random_moments_loses_nothing_and_counts_nothing_twice(
    engine: Engine, world: EmulatorServer, db_settings: Settings
) -> None:
    state = world.state
    first, _ = state.generate_invocations(DAINESE_ORG, BACKLOG // 2, skill=ENG_SKILL, seed=11)
    _, last = state.generate_invocations(
        DAINESE_ORG, BACKLOG // 2, failure_rate=0.1, skill=SALES_SKILL, seed=12
    )
    world.set_faults(duplicate_rate=0.3, duplicate_count=50, seed=13)
    rng = random.Random(os.environ.get("CLARESIA_CRASH_SEED", "6"))
    count = "SELECT count(*) FROM telemetry_event"
    partial_kills = 0
    for _ in range(KILLS):
        before = scalar(engine, count)
        proc = _poller(db_settings)
        # Kill only once pages flow: start-up time varies with the machine's load (a fixed
        # sleep killed pollers that had not started yet on a busy machine).
        deadline = time.monotonic() + 60
        while scalar(engine, count) == before and proc.poll() is None:
            assert time.monotonic() < deadline, "the poller stored nothing in 60 s"
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.0))
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL or proc.returncode == 0
        stored = scalar(engine, count)
        partial_kills += 0 < stored < BACKLOG
        if stored == BACKLOG:
            break
    assert partial_kills >= 1, "no kill landed mid-ingestion: the test proved nothing"
    final = _poller(db_settings)
    _, err = final.communicate(timeout=300)
    assert final.returncode == 0, err.decode()
    assert scalar(engine, count) == BACKLOG
    assert scalar(engine, "SELECT count(DISTINCT event_id) FROM telemetry_event") == BACKLOG
    assert scalar(engine, "SELECT count(*) FROM telemetry_event_id") == BACKLOG
    assert scalar(engine, "SELECT min(event_id) FROM telemetry_event") == first
    checkpoint = "SELECT after_id FROM audit_checkpoint WHERE org_id = :o"
    assert scalar(engine, checkpoint, o=DAINESE_ORG) == last
    assert scalar(engine, "SELECT count(*) FROM telemetry_quarantine") == 0
