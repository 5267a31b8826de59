"""Shared by the telemetry benchmarks: a fresh database, an emulator process, the demo tenants
and published skills, and a poller worker process (so that its memory is its own)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import resource
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import psycopg
from psycopg import sql
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from bench.common import backends_cpu, machine_busy_s
from claresia_sync.db import make_engine, normalize_url, upgrade
from claresia_sync.db.models import (
    CatalogSkill,
    OrgConnection,
    Publication,
    Tenant,
    WorkspaceMapping,
)

DAINESE_KEY = "sk-ant-admin01-dainese-DEMO-0000000000000000000000000000000000000000000000"
ORG = "org_dainese"
SKILLS = (  # published name, skill id, title, workspace, rbac group, owning tenant
    (
        "claresia-dainese-eng-incident-postmortem",
        "incident-postmortem",
        "Incident Postmortem",
        "wrkspc_dainese_eng",
        "rbac_group_dainese_engineers",
        "dainese-eng",
    ),
    (
        "claresia-dainese-meeting-summary",
        "meeting-summary",
        "Meeting Summary",
        "wrkspc_dainese_sales",
        "rbac_group_dainese_sales",
        "dainese",
    ),
)
LOCAL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _libpq(url: str) -> str:
    return normalize_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A new migrated database on CLARESIA_DATABASE_URL's server (else the local one)."""
    server = os.environ.get("CLARESIA_DATABASE_URL") or LOCAL
    name = f"claresia_bench_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(_libpq(server), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = normalize_url(make_url(server).set(database=name)).render_as_string(hide_password=False)
    engine = make_engine(url)
    try:
        upgrade(engine)
        engine.dispose()
        yield url
    finally:
        engine.dispose()
        with psycopg.connect(_libpq(server), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def emulator_process() -> Iterator[str]:
    """`claresia-sync emulator` in its own process (its own CPU, not the poller's GIL)."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "claresia_sync", "emulator", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx2.get(f"{base}/_emulator/health", timeout=1).raise_for_status()
                break
            except httpx2.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the emulator did not start") from None
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _skill_json(name: str, title: str) -> dict[str, Any]:
    description = f"{title} (benchmark skill). Use when benchmarking."
    skill_md = f"---\nname: {name}\ndescription: {description}\n---\n# {title}\n\nDo it.\n"
    return {
        "name": name,
        "display_title": title,
        "description": description,
        "files": [{"path": f"{name}/SKILL.md", "content": skill_md}],
        "metadata": {},
    }


def prime_emulator(base: str) -> None:
    """Back to the seed; publish the benchmark skills with their ACLs."""
    headers = {"x-api-key": DAINESE_KEY, "anthropic-version": "2023-06-01"}
    with httpx2.Client(base_url=base, headers=headers, timeout=60) as http:
        http.post("/_emulator/reset").raise_for_status()
        for name, _, title, ws, group, _ in SKILLS:
            made = http.post(f"/v1/organizations/{ORG}/skills", json=_skill_json(name, title))
            made.raise_for_status()
            http.put(
                f"/v1/organizations/{ORG}/skills/{made.json()['id']}/access",
                json={"workspace_ids": [ws], "rbac_group_ids": [group]},
            ).raise_for_status()


def generate(base: str, count: int, *, chunk: int = 100_000, seed: int = 1) -> str | None:
    """`count` invocations (10% failed) over the benchmark skills; the last event id."""
    last = None
    with httpx2.Client(base_url=base, timeout=600) as http:
        done = 0
        while done < count:
            n = min(chunk, count - done)
            answer = http.post(
                "/_emulator/invocations",
                json={"org_id": ORG, "count": n, "failure_rate": 0.1, "seed": seed + done},
            )
            answer.raise_for_status()
            last = answer.json()["last_id"]
            done += n
    return last


def prime_database(engine: Engine, base: str) -> None:
    """Tenant dainese (org_dainese at the emulator) with sub-tenant dainese-eng, publications."""
    with Session(engine) as s:
        dainese = Tenant(slug="dainese", display_name="Dainese S.p.A.")
        eng = Tenant(slug="dainese-eng", display_name="Dainese Engineering", parent=dainese)
        s.add_all([dainese, eng])
        s.flush()
        s.add(
            OrgConnection(
                tenant_id=dainese.id,
                org_id=ORG,
                admin_key_ref="env:CLARESIA_DAINESE_ADMIN_KEY",
                base_url=base,
            )
        )
        s.flush()
        owners = {"dainese": dainese, "dainese-eng": eng}
        for ws, tenant in [("wrkspc_dainese_sales", dainese), ("wrkspc_dainese_eng", eng)]:
            s.add(WorkspaceMapping(org_id=ORG, workspace_id=ws, tenant_id=tenant.id))
        for name, skill_id, title, _, _, owner in SKILLS:
            s.add(
                CatalogSkill(
                    skill_id=skill_id,
                    version="1.0.0",
                    title=title,
                    ir={},
                    ir_hash="sha256:" + "0" * 64,
                )
            )
            s.flush()
            s.add(
                Publication(
                    tenant_id=owners[owner].id,
                    skill_id=skill_id,
                    published_name=name,
                    status="published",
                )
            )
        s.commit()


def run_worker(url: str, page_size: int = 1000) -> dict[str, Any]:
    """Run one `poll_once` in a fresh process; its seconds, counts, peak RSS and CPU seconds
    (its own, its PostgreSQL backends', the whole machine's) over the poll."""
    env = {**os.environ, "CLARESIA_DATABASE_URL": url, "CLARESIA_DAINESE_ADMIN_KEY": DAINESE_KEY}
    out = subprocess.run(
        [sys.executable, "-m", "bench.telemetry_setup", str(page_size)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _vm_hwm_mib() -> float:
    """Peak RSS of this process image. Not `ru_maxrss`: Linux carries the pre-exec high-water
    mark (the forked copy of the parent) into it, which made a large parent look like ours."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _worker(page_size: int) -> None:
    from claresia_sync.telemetry.poller import poll_once

    url = os.environ["CLARESIA_DATABASE_URL"]
    engine = make_engine(url)
    gc.freeze()  # as the daemon does once started (daemon/service.py)
    rss_before = _vm_hwm_mib()
    db_before = backends_cpu(_libpq(url))
    busy, cpu, started = machine_busy_s(), time.process_time(), time.perf_counter()
    (result,) = asyncio.run(poll_once(engine, tenant="dainese", page_size=page_size))
    seconds = time.perf_counter() - started
    cpu, busy = time.process_time() - cpu, machine_busy_s() - busy
    db_cpu = sum(s - db_before.get(pid, 0.0) for pid, s in backends_cpu(_libpq(url)).items())
    print(
        json.dumps(
            {
                "seconds": seconds,
                "inserted": result.inserted,
                "received": result.received,
                "pages": result.pages,
                "error": result.error,
                "cpu_s": cpu,
                "db_cpu_s": db_cpu,
                "machine_busy_s": busy,
                "rss_start_mib": rss_before,
                "peak_rss_mib": _vm_hwm_mib(),
            }
        )
    )


if __name__ == "__main__":
    _worker(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
