"""Shared by the benchmarks: a description of the machine for bench/RESULTS.md."""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path


def machine() -> str:
    """CPU model, core count and Python version, for bench/RESULTS.md."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (of this machine) so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backends_cpu(libpq_url: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend of the database `libpq_url` names but the
    asking one (the server runs on this machine: its backends are in /proc)."""
    import psycopg  # here: the machine description needs no driver

    with psycopg.connect(libpq_url, autocommit=True) as conn:
        pids = [
            pid
            for (pid,) in conn.execute(
                "SELECT pid FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ]
    out = {}
    for pid in pids:
        with contextlib.suppress(FileNotFoundError):  # gone meanwhile
            out[pid] = cpu_s(pid)
    return out


def machine_busy_s() -> float:
    """CPU seconds all processes of this machine have used since boot (not idle, not iowait):
    what the two cores spent, the benchmark's other processes and other users included."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
