"""`claresia-sync demo` end to end, as README's first command runs it (embedded PostgreSQL)."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest

from tests.fixtures.daemon import wait_until

# Two demo runs of up to 240 s each (2.5 minutes together at load 9, -n 0), and one --serve.
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
        _every_source_shows(out)
        assert "Demo finished" in out
        # off a terminal nothing is cut or folded at 80 columns (issue 13 item 8)
        assert "┃ api calls ┃ api writes ┃ publish lag ┃" in out, out
    assert (tmp_path / "state" / "pgdata").is_dir()
    _follow_the_next_step_hint(out, env, tmp_path)


def _every_source_shows(out: str) -> None:
    """issue 24: the four telemetry sources, each fed as in production, and a row of each."""
    # the skills analytics: 30 days backfilled on the first run, the last 7 read again after
    read = re.search(
        r"org_ferretti: (\d+) day\(s\) read, (\d+) row\(s\) stored, (\d+) revised", out
    )
    assert read and int(read.group(1)) in (30, 7), out
    assert int(read.group(2)) + int(read.group(3)) > 0, out
    assert "an administrator deletes the plugin claresia-ferretti-prd-review in claude.ai" in out
    repair = re.search(r"repair job (\d+) queued\n.*repair job \1: succeeded, 1 created", out)
    assert repair, out  # the activity feed queued the repair at once, and it ran
    export = re.search(
        r"6 prompts in \d export\(s\) to http://127.0.0.1:\d+/v1/logs: HTTP 200;", out
    )
    assert export, out  # Claude Code's export through the OTLP receiver
    assert "Every source per skill (telemetry report --by-source)" in out
    rows = dict(
        (m.group(1), (m.group(2), int(m.group(3))))
        for m in re.finditer(r"^  (\S+-\S+)\s+(\S+/\S+)\s+(\d+) ", out, re.M)
    )
    assert set(rows) == {"audit-poller", "claude-code-otlp", "skills-analytics", "activity-feed"}
    assert all(n > 0 for _, n in rows.values()), rows
    assert rows["claude-code-otlp"][0].startswith("ferretti/")
    assert rows["skills-analytics"][0].startswith("ferretti/")
    assert rows["activity-feed"][0] == "ferretti/prd-review"  # deleted, then republished


def test_demo_serve_keeps_the_command_center_up_until_sigint(tmp_path: Path) -> None:
    """`demo --serve`: the console answers with the printed demo token, and Ctrl-C stops it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLARESIA_")}
    env["CLARESIA_STATE_DIR"] = str(tmp_path / "state")
    proc = subprocess.Popen(
        [sys.executable, "-m", "claresia_sync", "demo", "--invocations", "10", "--serve"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 240
        while not any(line.startswith("demo token: ") for line in lines):
            line = proc.stdout.readline()
            assert line and time.monotonic() < deadline, "".join(lines)
            lines.append(line)
        printed = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=0.2)
        url = re.search(r"^Command Center: (http://127\.0\.0\.1:\d+/) ", "".join(lines), re.M)
        assert url, "".join(lines)
        token = lines[-1].split(": ", 1)[1].strip()
        headers = {"Authorization": f"Bearer {token}"}
        who = httpx2.get(url.group(1) + "api/v1/whoami", headers=headers, timeout=30)
        assert who.status_code == 200, who.text
        assert who.json()["role"] == "operator"
        assert httpx2.get(url.group(1) + "api/v1/whoami", timeout=30).status_code == 401
        seen = httpx2.get(url.group(1) + "api/v1/telemetry/by-source", headers=headers, timeout=30)
        assert {r["tenant_slug"] for r in seen.json()} >= {"dainese", "ferretti"}
        page = httpx2.get(url.group(1) + "login", timeout=30)
        assert page.status_code == 200 and "Log in" in page.text  # the console itself

        def started_runs_done() -> bool:
            """The daemon's runs at its start are over (a Ctrl-C cancels a run in flight); the
            OTLP receiver's is pushed, not run."""
            orgs = httpx2.get(url.group(1) + "api/v1/organisations", headers=headers, timeout=30)
            runs = [
                s["last_run_at"]
                for o in orgs.json()
                for s in o["sources"]
                if s["source"] != "claude-code-otlp"
            ]
            return bool(runs) and all(r and dt.datetime.fromisoformat(r) > printed for r in runs)

        wait_until(started_runs_done, 60, "the daemon's first run of every source")
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, "".join(lines) + rest
    assert "Command Center stopped." in rest and "Traceback" not in rest


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
