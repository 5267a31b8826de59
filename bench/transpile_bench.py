"""Transpile throughput: N skills (default 10,000) from the example catalog, one process.

Run: .venv/bin/python -m bench.transpile_bench [--count 10000] [--tenants 50]
Prints skills/second for transpile alone and for parse + validate + transpile, and checks that a
sample of the output passes the reference validator (a fast transpiler that is wrong is no use).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import skills_ref

from bench.common import machine
from claresia_sync.ir import load_catalog, parse_ir
from claresia_sync.transpile import transpile

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--tenants", type=int, default=50)
    parser.add_argument("--catalog", type=Path, default=ROOT / "skills_ir/catalog")
    args = parser.parse_args()

    catalog = load_catalog([args.catalog])
    assert catalog.skills and not catalog.problems, catalog.problems
    # Distinct skills: each catalog entry under many skill ids, spread over several tenants.
    docs = []
    for i in range(args.count):
        raw = dict(catalog.skills[i % len(catalog.skills)].raw)
        raw["skill_id"] = f"{raw['skill_id']}-{i}"
        docs.append((json.dumps(raw).encode(), f"tenant-{i % args.tenants}"))

    t0 = time.perf_counter()
    parsed = []
    for data, tenant in docs:
        loaded = parse_ir(data, "bench.json")
        assert not isinstance(loaded, list)
        parsed.append((loaded.ir, tenant))
    t1 = time.perf_counter()
    out = [transpile(ir, tenant) for ir, tenant in parsed]
    t2 = time.perf_counter()

    with tempfile.TemporaryDirectory() as tmp:
        for skill in out[:: max(1, len(out) // 20)]:
            problems = skills_ref.validate(skill.write(Path(tmp)))
            assert problems == [], problems

    n = len(out)
    size = sum(len(f.content) for s in out for f in s.files) / n
    print(f"machine: {machine()}")
    print(
        f"skills: {n} ({len(catalog.skills)} catalog templates, {args.tenants} tenants), "
        f"mean bundle {size / 1024:.1f} KiB"
    )
    print(f"parse+validate: {n / (t1 - t0):,.0f} skills/s ({t1 - t0:.2f}s)")
    print(f"transpile:      {n / (t2 - t1):,.0f} skills/s ({t2 - t1:.2f}s)")
    print(f"end to end:     {n / (t2 - t0):,.0f} skills/s ({t2 - t0:.2f}s)")


if __name__ == "__main__":
    main()
