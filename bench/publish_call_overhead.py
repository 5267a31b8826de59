"""Where the time of benchmark (b) goes: N calls of one kind through `OrgClient` with 16 in
flight against the emulator (own process, 20 ms latency), wall vs `N x latency / 16`, and the
CPU each side spent per call.

    python -m bench.publish_call_overhead [--calls 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from bench.common import machine
from bench.publish_setup import Emulator, key_of
from claresia_sync.api.client import OrgClient, make_http_pool
from claresia_sync.secrets import AdminKey

CONCURRENCY = 16
LATENCY_MS = 20


def payload(name: str) -> dict[str, Any]:
    description = "Drafts a short note. Use when a note is needed."
    return {
        "name": name,
        "display_title": "Note",
        "description": description,
        "files": [
            {
                "path": f"{name}/SKILL.md",
                "content": f"---\nname: {name}\ndescription: {description}\n---\n# Note\n",
            }
        ],
        "metadata": {},
    }


async def calls(base_url: str, kind: str, n: int) -> tuple[float, float]:
    sem = asyncio.Semaphore(CONCURRENCY)
    stamp = time.time_ns()
    async with make_http_pool(max_connections=CONCURRENCY + 4) as http:
        client = OrgClient(base_url, AdminKey(key_of(0)), http=http)

        async def one(i: int) -> None:
            async with sem:
                if kind == "GET me":
                    await client.get_organization()
                else:
                    await client.create_skill("org_bench0", payload(f"claresia-b{stamp}-{i}"))

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(one(i) for i in range(n)))
        return time.perf_counter() - started, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    n = args.calls
    print(f"machine: {machine()}")
    with Emulator(1) as emu:
        emu.latency(LATENCY_MS)
        for kind in ("GET me", "POST skill"):
            before = emu.cpu_seconds()
            wall, cpu = asyncio.run(calls(emu.base_url, kind, n))
            server = emu.cpu_seconds() - before
            ideal = n * LATENCY_MS / 1000 / CONCURRENCY
            print(
                f"{n} x {kind}: wall {wall:.2f} s, ideal {ideal:.2f} s, ratio {wall / ideal:.2f}x;"
                f" CPU per call: client {cpu / n * 1000:.2f} ms, emulator "
                f"{server / n * 1000:.2f} ms"
            )


if __name__ == "__main__":
    main()
