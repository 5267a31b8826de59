"""The cost of one reading of a wave's guardrails (issue 22): what the daemon's `rollout` step
pays every `CLARESIA_ROLLOUT_INTERVAL` (30 s) while a wave publishes or soaks.

`rollout.guardrails.read` counts the changed skill's events by the content live when each
happened (the view `telemetry_by_release`: one `publication_history` lookup per event) three
times: the wave's tenants over the window since the wave started, every tenant over that
window, the wave's tenants over the same length before. So its cost grows with the events of
the changed skills in twice the window, i.e. with the soak.

The world, written straight into a scratch database: `--tenants` root tenants on release 1 of
the example catalog, release 2 changing meeting-summary; the first `--wave` tenants moved to
it `--window-h` hours ago (a `publication_history` row each); meeting-summary used
`--per-hour` times an hour across all tenants (5% failed) from twice the window ago until now.
Per reading: CPU seconds of this process and of its PostgreSQL backend, and the events the
view read, median of `--reads` readings.

    python -m bench.guardrails_read [--tenants 500] [--wave 50] [--per-hour 20000]
                                    [--window-h 1 24] [--reads 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from bench.common import backends_cpu, cpu_s, machine
from bench.publish_setup import _libpq, scratch_database
from claresia_sync.catalog_store import import_catalog
from claresia_sync.ir import load_catalog
from claresia_sync.rollout import guardrails
from claresia_sync.rollout.plan import Guardrails

CATALOG = Path(__file__).resolve().parents[1] / "skills_ir" / "catalog"
SKILL = "meeting-summary"


def releases(engine: Engine) -> None:
    """Release 1: the example catalog; release 2 (held): meeting-summary's summary changed."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "catalog"
        shutil.copytree(CATALOG, folder)
        with Session(engine) as s:
            import_catalog(s, load_catalog([folder]).skills)
            s.commit()
        path = folder / f"{SKILL}.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "summary": "Two."}))
        with Session(engine) as s:
            assert import_catalog(s, load_catalog([folder]).skills, hold=True).release == 2
            s.commit()


def world(
    engine: Engine, tenants: int, wave: int, per_hour: int, window: dt.timedelta
) -> dt.datetime:
    """History and telemetry (see the module doc); when the wave started."""
    now = dt.datetime.now(dt.UTC)
    since = now - window
    start = since - window
    events = int(per_hour * 2 * window.total_seconds() / 3600)
    with engine.begin() as conn:
        conn.execute(
            text("""
INSERT INTO publication_history
       (at, tenant_id, tenant_slug, skill_id, target, published_name, action, status,
        content_hash, release)
SELECT :long_ago, i, 't' || lpad(i::text, 5, '0'), :skill, 'org-skills', 'n', 'published',
       'published', 'old', 1
  FROM generate_series(0, :tenants - 1) i
UNION ALL
SELECT :since, i, 't' || lpad(i::text, 5, '0'), :skill, 'org-skills', 'n', 'updated',
       'published', 'new', 2
  FROM generate_series(0, :wave - 1) i
"""),
            {
                "long_ago": start - dt.timedelta(days=30),
                "since": since,
                "skill": SKILL,
                "tenants": tenants,
                "wave": wave,
            },
        )
        month = start.replace(day=1)
        while month <= now:
            conn.execute(text("SELECT telemetry_event_ensure_partition(:at)"), {"at": month})
            month = (month + dt.timedelta(days=32)).replace(day=1)
        params = {"n": events, "start": start, "span": (now - start).total_seconds()}
        conn.execute(
            text("""
INSERT INTO telemetry_event_id (event_id, occurred_at)
SELECT 'e' || i, :start + make_interval(secs => :span * i / :n)
  FROM generate_series(0, :n - 1) i
"""),
            params,
        )
        conn.execute(
            text("""
INSERT INTO telemetry_event (record_id, event_id, event_type, status, occurred_at, org_id,
                             tenant_slug, skill_id, skill_name, raw)
SELECT 'r' || i, 'e' || i, 'skill_invoked',
       CASE WHEN i % 20 = 0 THEN 'failed' ELSE 'succeeded' END,
       :start + make_interval(secs => :span * i / :n), 'org_' || (i % :tenants),
       't' || lpad((i % :tenants)::text, 5, '0'), :skill, 'n', '{}'::jsonb
  FROM generate_series(0, :n - 1) i
"""),
            {**params, "tenants": tenants, "skill": SKILL},
        )
        conn.execute(text("ANALYZE"))
    return since


def read_once(engine: Engine, previous: dict[str, int], since: dt.datetime) -> tuple[float, float]:
    """CPU seconds of one reading: (this process, its backend)."""
    url = _libpq(engine.url.render_as_string(hide_password=False))
    with Session(engine) as s:
        s.execute(text("SELECT 1"))  # the backend exists before it is measured
        before_db, before = backends_cpu(url), cpu_s(os.getpid())
        readings = guardrails.read(s, 2, previous, since, dt.datetime.now(dt.UTC), Guardrails())
        after, after_db = cpu_s(os.getpid()), backends_cpu(url)
    assert readings.skills[0].new_invocations > 0, readings.as_json()
    backend = sum(after_db.get(pid, 0.0) - cpu for pid, cpu in before_db.items())
    return after - before, backend


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=500)
    parser.add_argument("--wave", type=int, default=50)
    parser.add_argument("--per-hour", type=int, default=20_000)
    parser.add_argument("--window-h", type=float, nargs="+", default=[1.0, 24.0])
    parser.add_argument("--reads", type=int, default=5)
    args = parser.parse_args()
    print(f"machine: {machine()}; load {_load()}")
    for hours in args.window_h:
        with scratch_database() as engine:
            releases(engine)
            window = dt.timedelta(hours=hours)
            since = world(engine, args.tenants, args.wave, args.per_hour, window)
            previous = {f"t{i:05d}": 1 for i in range(args.wave)}
            read_once(engine, previous, since)  # warm: plans, caches
            runs = [read_once(engine, previous, since) for _ in range(args.reads)]
            events = int(args.per_hour * 2 * hours)
            own = statistics.median(r[0] for r in runs)
            db = statistics.median(r[1] for r in runs)
            load = _load()
            print(
                f"window {hours:g} h ({events:,} events of the changed skill in twice the "
                f"window, {args.tenants} tenants, wave {args.wave}): one reading "
                f"{own * 1000:.0f} ms CPU here + {db * 1000:.0f} ms its backend "
                f"(median of {args.reads}; load {load}); every 30 s: "
                f"{(own + db) / 30 * 100:.1f}% of a core"
            )
        time.sleep(1)


if __name__ == "__main__":
    main()
