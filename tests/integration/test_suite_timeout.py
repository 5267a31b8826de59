"""No test can hang the suite (issue 21): pytest-timeout, configured in pyproject.toml, fails a
hung test, sync or anyio, in an xdist worker, and the run goes on with the next test."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

HANGING = """
import asyncio
import threading

import pytest


def test_a_sync_hang() -> None:
    threading.Event().wait()


@pytest.mark.anyio
async def test_an_async_hang() -> None:
    await asyncio.Event().wait()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_the_next_one_still_runs() -> None:
    assert True
"""


def test_a_hung_test_fails_and_the_run_goes_on(tmp_path: Path) -> None:
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]
    assert options["ini_options"]["timeout_method"] == "signal"
    assert options["ini_options"]["timeout"] > 0
    (tmp_path / "test_hanging.py").write_text(HANGING)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-c",
            str(ROOT / "pyproject.toml"),
            "--rootdir",
            str(tmp_path),
            "-p",
            "no:cacheprovider",
            "-o",
            "timeout=2",  # the configured method, a shorter bound
            "-n",
            "2",
            "-q",
            str(tmp_path / "test_hanging.py"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "2 failed, 1 passed" in out, out
    assert out.count("Failed: Timeout (>2.0s) from pytest-timeout") >= 2, out
