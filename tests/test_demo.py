"""`claresia-sync demo` end to end, as README's first command runs it (embedded PostgreSQL)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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
        assert out.count("40 events ingested") == 2, out  # both organisations, every run
        assert "failed (" in out  # a failed run's card footer
        assert "Demo finished" in out
    assert (tmp_path / "state" / "pgdata").is_dir()
