"""Shared by the publisher benchmarks: a scratch database, a synthetic world, an emulator in its
own process (so its CPU does not compete with the publisher's for one GIL).

The world: N organisations, each with one root tenant `bt{i}` (one workspace, one archetype
bound to one rbac group) granted every skill of a catalog of M skills made from the 10 example
skills of skills_ir/catalog under new ids.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import secrets
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import psycopg
from psycopg import sql
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from claresia_sync.db.engine import make_engine, normalize_url
from claresia_sync.db.migrate import upgrade
from claresia_sync.db.models import (
    Archetype,
    CatalogSkill,
    OrgConnection,
    SkillGrant,
    Tenant,
    WorkspaceMapping,
)
from claresia_sync.ir import canonical_hash, load_catalog
from claresia_sync.release_store import cut_release

ROOT = Path(__file__).resolve().parent.parent
SERVER = os.environ.get(
    "CLARESIA_BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def _libpq(url: str) -> str:
    return normalize_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def libpq_of(engine: Engine) -> str:
    """The libpq URL of an engine's database (`bench.common.backends_cpu` takes it)."""
    return _libpq(engine.url.render_as_string(hide_password=False))


@contextmanager
def scratch_database() -> Iterator[Engine]:
    """A new migrated database on the server, dropped afterwards."""
    name = f"claresia_bench_{os.getpid()}_{secrets.token_hex(3)}"
    admin = _libpq(SERVER)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = normalize_url(make_url(SERVER).set(database=name))
    engine = make_engine(url, pool_size=8)
    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def key_of(i: int) -> str:
    return f"sk-ant-admin01-bench{i:04d}-" + "0" * 40


def seed(orgs: int) -> dict[str, Any]:
    return {
        "organizations": [
            {
                "id": f"org_bench{i}",
                "name": f"Bench {i}",
                "zero_data_retention": True,
                "workspaces": [{"id": f"wrkspc_bench{i}", "name": f"bench-{i}"}],
                "rbac_groups": [{"id": f"rbac_group_bench{i}", "name": "everyone"}],
                "admin_keys": [{"key": key_of(i), "name": "bench"}],
                "users": [
                    {
                        "id": f"user_bench{i}",
                        "email": f"u{i}@bench.example",
                        "workspaces": [f"wrkspc_bench{i}"],
                        "rbac_groups": [f"rbac_group_bench{i}"],
                    }
                ],
            }
            for i in range(orgs)
        ]
    }


def _serve(seed_data: dict[str, Any], port_out: Any, stop: Any) -> None:
    from claresia_sync.emulator import EmulatorServer

    with EmulatorServer(seed_data) as server:
        port_out.put(server.port)
        stop.wait()


class Emulator:
    """The emulator in a child process, driven through its control routes."""

    def __init__(self, orgs: int, seed_data: dict[str, Any] | None = None) -> None:
        ctx = mp.get_context("spawn")
        self._ports: Any = ctx.Queue()
        self._stop = ctx.Event()
        world = seed_data if seed_data is not None else seed(orgs)
        self._proc = ctx.Process(target=_serve, args=(world, self._ports, self._stop))

    def __enter__(self) -> Emulator:
        self._proc.start()
        self.base_url = f"http://127.0.0.1:{self._ports.get(timeout=60)}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._proc.join(timeout=10)
        if self._proc.is_alive():
            self._proc.terminate()

    def control(self, method: str, path: str, body: Any = None) -> Any:
        answer = httpx2.request(method, self.base_url + path, json=body, timeout=60)
        answer.raise_for_status()
        return answer.json()

    def latency(self, ms: float) -> None:
        self.control("POST", "/_emulator/faults", {"latency_ms": ms})

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self.control("GET", "/_emulator/stats")
        return result

    def cpu_seconds(self) -> float:
        """CPU time the emulator process has used so far (Linux /proc)."""
        fields = Path(f"/proc/{self._proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def reset_stats(self) -> None:
        self.control("POST", "/_emulator/stats/reset")


def catalog_rows(count: int) -> list[CatalogSkill]:
    examples = load_catalog([ROOT / "skills_ir" / "catalog"]).skills
    rows = []
    for i in range(count):
        base = examples[i % len(examples)]
        raw = {**base.raw, "skill_id": f"{base.ir.skill_id}-{i // len(examples)}"}
        rows.append(
            CatalogSkill(
                skill_id=raw["skill_id"],
                version=base.ir.version,
                title=base.ir.title,
                ir=raw,
                ir_hash=canonical_hash(raw),
            )
        )
    return rows


def build_world(engine: Engine, base_url: str, tenants: int, skills: int) -> None:
    """Catalog, tenants, connections, workspaces, archetypes and grants; keys in the env."""
    rows = catalog_rows(skills)
    with Session(engine) as s:
        s.add_all(rows)
        s.flush()
        cut_release(s, by="bench", note="bench catalog")
        for i in range(tenants):
            os.environ[f"CLARESIA_BENCH_KEY_{i}"] = key_of(i)
            t = Tenant(slug=f"bt{i}", display_name=f"Bench tenant {i}")
            s.add(t)
            s.flush()
            s.add(
                OrgConnection(
                    tenant_id=t.id,
                    org_id=f"org_bench{i}",
                    admin_key_ref=f"env:CLARESIA_BENCH_KEY_{i}",
                    base_url=base_url,
                )
            )
            s.flush()
            s.add(
                WorkspaceMapping(
                    org_id=f"org_bench{i}", workspace_id=f"wrkspc_bench{i}", tenant_id=t.id
                )
            )
            arch = Archetype(tenant_id=t.id, slug="staff", rbac_group_id=f"rbac_group_bench{i}")
            arch.grants = [SkillGrant(skill_id=r.skill_id) for r in rows]
            s.add(arch)
        s.commit()


@dataclass
class Onboarding:
    """What `measure_onboarding` saw, one entry per job: its publish lag, its API calls, and
    the CPU seconds the job cost the publisher (this process), the emulator and the database's
    backends (how the benchmark is compared on a shared machine, where walls are noise)."""

    lags: list[float] = field(default_factory=list)
    calls: list[int] = field(default_factory=list)
    publisher_cpu: list[float] = field(default_factory=list)
    emulator_cpu: list[float] = field(default_factory=list)
    backends_cpu: list[float] = field(default_factory=list)

    def cpu_line(self) -> str:
        """Median CPU per job and per API call of each side, and the load average."""
        per_call = median(self.calls) or 1
        sides = [
            ("publisher", self.publisher_cpu),
            ("emulator", self.emulator_cpu),
            ("PostgreSQL backends", self.backends_cpu),
        ]
        shown = ", ".join(
            f"{name} {median(xs) * 1000:.0f} ms ({median(xs) / per_call * 1000:.2f} ms a call)"
            for name, xs in sides
        )
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        return f"CPU per job (median): {shown}; load average {load}"


def measure_onboarding(
    engine: Engine, emu: Emulator, slugs: list[str], skills: int, concurrency: int
) -> Onboarding:
    """Queue and run one onboarding job per tenant in `slugs`, one after another: the publish
    lag of each (requested -> last skill live), the API calls it made and the CPU it cost."""
    import asyncio

    from bench.common import backends_cpu
    from claresia_sync.publish import enqueue, run_next_job

    libpq = libpq_of(engine)
    seen = Onboarding()
    for slug in slugs:
        emu.reset_stats()
        with Session(engine) as s:
            enqueue(s, slug)
            s.commit()
        backends, emulator, cpu = backends_cpu(libpq), emu.cpu_seconds(), time.process_time()
        outcome = asyncio.run(run_next_job(engine, concurrency=concurrency))
        seen.publisher_cpu.append(time.process_time() - cpu)
        seen.emulator_cpu.append(emu.cpu_seconds() - emulator)
        after = backends_cpu(libpq)
        seen.backends_cpu.append(sum(c - backends.get(pid, 0.0) for pid, c in after.items()))
        assert outcome is not None and outcome.status == "succeeded", outcome
        assert outcome.stats["created"] == skills
        seen.lags.append(float(outcome.stats["publish_lag_s"]))
        seen.calls.append(int(emu.stats()["total"]))
    return seen


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    rank = max(1, round(p / 100 * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def median(values: list[float]) -> float:
    return statistics.median(values)
