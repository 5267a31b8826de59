"""`claresia-sync demo` end to end, as README's first command runs it (embedded PostgreSQL)."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

# Two demo runs of up to 240 s each (2.5 minutes together at load 9, -n 0).
pytestmark = pytest.mark.timeout(600)

ROOT = Path(__file__).resolve().parents[2]


def test_demo_on_the_embedded_default(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CLARESIA_DATABASE_URL"}
    env["CLARESIA_STATE_DIR"] = str(tmp_path / "state")
    for _ in (1, 2):  # the second run reuses the embedded database and the published state
        done = subprocess.run(
            [sys.executable, "-m", "claresia_sync", "demo", "--invocations", "40"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        out = done.stdout
        assert "Dainese S.p.A." in out and "Zero retention: enabled" in out
        assert "publish job" in out and ": succeeded" in out
        assert "claresia-dainese-eng-incident-postmortem" in out  # in an engineer's picker
        # a tenant on claude-enterprise: its connection test and its users' @ picker (plugins)
        assert "[claude-enterprise]" in out and "Ferretti Group (org_ferretti)" in out
        assert "claresia-ferretti-prd-review" in out and "user_ferretti_chiara" in out
        # a tenant on claude-api: its workspace key's check and the skills of its workspace,
        # each with our ownership marker in its display name
        assert "[claude-api:wrkspc_vespucci_support]" in out and "key valid and belongs" in out
        assert "claresia-vespucci-meeting-summary [claresia-sync vespucci/meeting-summary" in out
        assert out.count("40 events ingested") == 2, out  # both organisations, every run
        assert "failed (" in out  # a failed run's card footer
        assert "Demo finished" in out
        # off a terminal nothing is cut or folded at 80 columns (issue 13 item 8)
        assert "┃ api calls ┃ api writes ┃ publish lag ┃" in out, out
    assert (tmp_path / "state" / "pgdata").is_dir()
    _follow_the_next_step_hint(out, env, tmp_path)


def _follow_the_next_step_hint(out: str, env: dict[str, str], cwd: Path) -> None:
    """issue 13 item 12: the demo's "where to look next" commands work after the demo."""
    emulator_cmd = re.search(r"^\s+claresia-sync (emulator --port \d+)$", out, re.M)
    dry_run = re.search(
        r"^\s+env (.+) claresia-sync (republish --all --force --dry-run)$", out, re.M
    )
    assert emulator_cmd and dry_run, out
    emulator = subprocess.Popen(
        [sys.executable, "-m", "claresia_sync", *emulator_cmd.group(1).split()],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port = int(emulator_cmd.group(1).split()[-1])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as s, contextlib.suppress(OSError):
                s.connect(("127.0.0.1", port))
                break
            time.sleep(0.1)
        keys = dict(pair.split("=", 1) for pair in dry_run.group(1).split())
        plan = subprocess.run(
            [sys.executable, "-m", "claresia_sync", *dry_run.group(2).split()],
            env={**env, **keys},
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    # --force compares with the fresh emulator's own list: everything is to be created again.
    planned = re.search(r"plan: (\d+) create, .* 0 failed", plan.stdout)
    assert planned and int(planned.group(1)) > 0, plan.stdout
