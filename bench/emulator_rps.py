"""How fast is the emulator? Requests/second for a simple GET, and for 1,000-event audit pages.

The emulator runs as its own process (`claresia-sync emulator --port 0`), so it has the GIL to
itself; the load comes from lean keep-alive HTTP/1.1 connections on raw asyncio streams (an
httpx2 client would be slower than the server and measure itself), spread over worker
processes. Usage:

    python bench/emulator_rps.py [--seconds 10] [--connections 32] [--workers 1]
                                 [--backlog 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-ant-admin01-dainese-DEMO-0000000000000000000000000000000000000000000000"
ORG = "org_dainese"


def _request(path: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nx-api-key: {KEY}\r\n"
        "anthropic-version: 2023-06-01\r\n\r\n"
    ).encode()


async def _connection(port: int, request: bytes, until: float, counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < until:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(head.split(b"\r\n")[0].decode())
            found = re.search(rb"(?i)content-length: *(\d+)", head)
            await reader.readexactly(int(found.group(1)) if found else 0)
            counts[0] += 1
    finally:
        writer.close()


def _worker(
    port: int, path: str, connections: int, seconds: float, out: multiprocessing.Queue
) -> None:  # type: ignore[type-arg]
    counts = [0]
    until = time.perf_counter() + seconds

    async def run() -> None:
        await asyncio.gather(
            *(_connection(port, _request(path), until, counts) for _ in range(connections))
        )

    asyncio.run(run())
    out.put(counts[0])


def load(port: int, path: str, *, seconds: float, connections: int, workers: int) -> float:
    """Requests per second over `seconds`, `connections` keep-alive connections per worker."""
    queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    procs = [
        multiprocessing.Process(target=_worker, args=(port, path, connections, seconds, queue))
        for _ in range(workers)
    ]
    started = time.perf_counter()
    for p in procs:
        p.start()
    total = sum(queue.get() for _ in procs)
    for p in procs:
        p.join()
    return total / (time.perf_counter() - started)


def _post(port: int, path: str, body: dict[str, object]) -> dict[str, object]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode(),
        headers={
            "content-type": "application/json",
            "x-api-key": KEY,
            "anthropic-version": "2023-06-01",
        },
        method="PUT" if path.endswith("/access") else "POST",
    )
    with urllib.request.urlopen(req, timeout=600) as answer:
        result: dict[str, object] = json.loads(answer.read())
        return result


def _skill(name: str) -> dict[str, object]:
    description = "Bench skill. Use when benchmarking."
    md = f"---\nname: {name}\ndescription: {description}\n---\n# Bench\n\nDo it.\n"
    return {
        "name": name,
        "description": description,
        "display_title": "Bench",
        "files": [{"path": f"{name}/SKILL.md", "content": md}],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--backlog", type=int, default=1_000_000)
    args = parser.parse_args()

    server = subprocess.Popen(
        [sys.executable, "-m", "claresia_sync", "emulator", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)", first).group(1))  # type: ignore[union-attr]
        try:
            import httptools  # noqa: F401

            parser_name = "httptools"
        except ImportError:
            parser_name = "h11"
        try:
            import uvloop  # noqa: F401

            loop_name = "uvloop"
        except ImportError:
            loop_name = "asyncio"
        print(
            f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, uvicorn with {parser_name} + {loop_name}"
        )

        me = load(
            port,
            "/v1/organizations/me",
            seconds=args.seconds,
            connections=args.connections,
            workers=args.workers,
        )
        print(
            f"GET /v1/organizations/me: {me:,.0f} requests/s "
            f"({args.workers} worker(s) x {args.connections} keep-alive connections, "
            f"{args.seconds:.0f} s)"
        )

        skill = _post(port, f"/v1/organizations/{ORG}/skills", _skill("claresia-dainese-bench"))
        _post(
            port,
            f"/v1/organizations/{ORG}/skills/{skill['id']}/access",
            {
                "workspace_ids": ["wrkspc_dainese_eng"],
                "rbac_group_ids": ["rbac_group_dainese_engineers"],
            },
        )
        started = time.perf_counter()
        _post(
            port,
            "/_emulator/invocations",
            {"org_id": ORG, "count": args.backlog, "failure_rate": 0.05, "seed": 1},
        )
        took = time.perf_counter() - started
        print(
            f"generate {args.backlog:,} audit events: {took:.1f} s "
            f"({args.backlog / took:,.0f} events/s)"
        )
        pages = load(
            port,
            f"/v1/organizations/{ORG}/audit_logs?limit=1000&event_types="
            "skill.invoked,skill.failed&after_id=evt_01",
            seconds=args.seconds,
            connections=4,
            workers=args.workers,
        )
        print(
            f"GET audit_logs, 1,000-event pages: {pages:,.0f} pages/s "
            f"({pages * 1000:,.0f} events/s; 4 connections)"
        )
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
