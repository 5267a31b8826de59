"""Republish-all past one replica: N organisations x M skills at a given latency, run by 1, 2
and 4 daemons (`claresia-sync run` processes on one database), each from scratch.

A republish-all is split into one unit per organisation (publish/job_units.py) that any replica
claims. For each replica count: wall time from the insert of the job (`INSERT INTO publish_job
DEFAULT VALUES`) to its end, against

- the critical path: max(API calls x latency / (replicas x calls in flight per replica), the
  longest chain of calls one organisation must make one after another (its gate, then a skill's
  create and access), x latency): what the bounds alone allow;
- the CPU the work took (replicas, emulator, PostgreSQL backends) over the machine's cores: the
  floor of a CPU-bound run. Where wall time follows this floor and not the critical path, the
  machine, not the design, is the limit.

    python -m bench.publish_replicas [--orgs 1000] [--skills 10] [--latency-ms 50]
        [--replicas 1,2,4] [--workers 8] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2
from sqlalchemy import Engine, text

from bench.common import cpu_s, machine, machine_busy_s
from bench.publish_setup import ROOT, Emulator, build_world, scratch_database
from claresia_sync.publish import jobs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _backend_cpu(engine: Engine) -> float:
    """CPU of this database's PostgreSQL backends (same machine: /proc)."""
    with engine.connect() as conn:
        pids = conn.execute(
            text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        ).scalars()
        total = 0.0
        for pid in pids:
            with contextlib.suppress(OSError):  # ended since
                total += cpu_s(int(pid))
    return total


class Replica:
    def __init__(self, engine: Engine, workers: int, concurrency: int, log: Path) -> None:
        self.port = _free_port()
        env = {
            **os.environ,
            "CLARESIA_DATABASE_URL": engine.url.render_as_string(hide_password=False),
            "CLARESIA_STATE_DIR": str(log.parent),
        }
        self.log = log.open("w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "claresia_sync",
                "run",
                "--ops-host",
                "127.0.0.1",
                "--ops-port",
                str(self.port),
                "--publish-workers",
                str(workers),
                "--publish-concurrency",
                str(concurrency),
                "--org-concurrency",
                str(concurrency),
                "--poll-interval",
                "86400",
                "--drift-interval",
                "86400",
                "--log-format",
                "json",
            ],
            env=env,
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"replica exited with {self.proc.returncode}: see {self.log.name}")
        try:
            return httpx2.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2).status_code == 200
        except httpx2.HTTPError:
            return False

    def cpu(self) -> float:
        return cpu_s(self.proc.pid)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def _wait(what: str, done: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.1)


def _quiet(emu: Emulator, settle: float = 2.0) -> None:
    """Until the replicas' first audit polls (one per organisation, at start) are over."""
    last, still = -1, time.monotonic()
    while time.monotonic() - still < settle:
        total = int(emu.stats()["total"])
        if total != last:
            last, still = total, time.monotonic()
        time.sleep(0.25)


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def one(args: argparse.Namespace, replicas: int, emu: Emulator, tmp: Path) -> dict[str, float]:
    emu.control("POST", "/_emulator/reset")
    with scratch_database() as engine:
        build_world(engine, emu.base_url, args.orgs, args.skills)
        started = [
            Replica(engine, args.workers, args.concurrency, tmp / f"replica-{replicas}-{i}.log")
            for i in range(replicas)
        ]
        try:
            for r in started:
                _wait("replica readiness", r.ready, 120)
            _quiet(emu)
            emu.latency(args.latency_ms)
            emu.reset_stats()
            cpu0 = [r.cpu() for r in started]
            emu0, pg0, busy0 = emu.cpu_seconds(), _backend_cpu(engine), machine_busy_s()
            t0 = time.perf_counter()
            with engine.begin() as conn:
                job_id = conn.execute(
                    text("INSERT INTO publish_job DEFAULT VALUES RETURNING id")
                ).scalar_one()
            _wait(
                "the republish-all",
                lambda: jobs.get_job(engine, job_id).status in jobs.FINISHED,
                3600,
            )
            wall = time.perf_counter() - t0
            cpu = sum(r.cpu() - c for r, c in zip(started, cpu0, strict=True))
            emu_cpu, pg_cpu = emu.cpu_seconds() - emu0, _backend_cpu(engine) - pg0
            busy = machine_busy_s() - busy0
            view = jobs.get_job(engine, job_id)
            stats = emu.stats()
        finally:
            for r in started:
                r.stop()
    assert view.status == "succeeded", view.errors[:3]
    assert view.stats["created"] == args.orgs * args.skills, view.stats
    calls = int(stats["total"])
    latency = args.latency_ms / 1000
    bound = calls * latency / (replicas * args.concurrency)
    # One organisation: its gate's calls one after another, then a skill's create and access.
    gate = max(0, calls // args.orgs - 2 * args.skills)
    chain = (gate + 2) * latency
    critical = max(bound, chain)
    return {
        "wall": wall,
        "calls": calls,
        "critical": critical,
        "replica_cpu": cpu,
        "emulator_cpu": emu_cpu,
        "pg_cpu": pg_cpu,
        "cpu_floor": (cpu + emu_cpu + pg_cpu) / (os.cpu_count() or 1),
        "machine_busy": busy / wall / (os.cpu_count() or 1),
        "peak_org": max(stats.get("peak_in_flight", {}).values() or [0]),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orgs", type=int, default=1000)
    parser.add_argument("--skills", type=int, default=10)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--replicas", default="1,2,4")
    parser.add_argument("--workers", type=int, default=8, help="units one replica runs at once")
    parser.add_argument("--concurrency", type=int, default=16, help="calls one replica at once")
    args = parser.parse_args()
    counts = [int(n) for n in args.replicas.split(",")]
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"claresia-bench-replicas-{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}")
    print(
        f"republish-all of {args.orgs} organisations x {args.skills} skills, latency "
        f"{args.latency_ms:.0f} ms; per replica {args.workers} units and {args.concurrency} "
        "calls at once"
    )
    with Emulator(args.orgs) as emu:
        for n in counts:
            before = uptime()
            r = one(args, n, emu, tmp)
            print(
                f"{n} replica(s): wall {r['wall']:.1f} s, critical path {r['critical']:.1f} s "
                f"({r['wall'] / r['critical']:.2f}x; {r['calls']:.0f} calls); CPU: replicas "
                f"{r['replica_cpu']:.1f} s ({r['replica_cpu'] / r['calls'] * 1000:.2f} ms/call), "
                f"emulator {r['emulator_cpu']:.1f} s, PostgreSQL {r['pg_cpu']:.1f} s: CPU floor "
                f"{r['cpu_floor']:.1f} s on {os.cpu_count()} cores; the machine "
                f"{r['machine_busy']:.0%} busy (all its processes); peak calls of one "
                f"organisation at once {r['peak_org']:.0f}"
            )
            print(f"  load before: {before}")
            print(f"  load after:  {uptime()}")


if __name__ == "__main__":
    main()
