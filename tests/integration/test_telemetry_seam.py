"""The telemetry source seam (docs/architecture.md): a source registered by this test alone
(no product module knows it) supplies only its page read, its normaliser and its row loader,
and gets from the seam what every source gets: the daemon's schedule and single-replica run,
each step in one transaction with its checkpoint (compared: a step planned from a checkpoint
another replica moved is dropped, nothing written twice, the checkpoint never moved back),
quarantine, its outcome in `status` and /metrics, an API failure recorded as the run's error."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, text

from claresia_sync.api.client import CallCounter, make_http_pool
from claresia_sync.api.connect import TenantConnection
from claresia_sync.api.errors import APIConnectionError
from claresia_sync.config import Settings
from claresia_sync.daemon.metrics import Metrics
from claresia_sync.daemon.runtime import LiveWork
from claresia_sync.daemon.service import WorkFailed
from claresia_sync.telemetry import seam, sources
from claresia_sync.telemetry.settings import TelemetrySettings
from tests.cli import clean_env, run_cli

NAME = "probe-feed"
ORG = "org_probe"
CONN = TenantConnection("probe", "probe", ORG, "env:UNUSED", target="claude-enterprise")


class ProbeApi:
    """A pretend API: items with ascending ids, read two at a time after a cursor."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items
        self.fail = False
        self.before_write: list[Any] = []  # called once, between a page's read and its step

    def after(self, cursor: str | None) -> list[dict[str, Any]]:
        if self.fail:
            raise APIConnectionError("ConnectError reaching the probe API", route="GET /probe")
        return [i for i in self.items if cursor is None or i["id"] > cursor][:2]


class ProbeSource:
    """The three things a source supplies; nothing else."""

    name = NAME

    def __init__(self, api: ProbeApi) -> None:
        self.api = api

    async def next_step(self, state: sources.Checkpoint) -> seam.Step | None:
        page = self.api.after(state.cursor)
        if not page:
            return None
        while self.api.before_write:
            self.api.before_write.pop()()
        return seam.Step(seam.one_page(seam.Page(page)), advance={"cursor": page[-1]["id"]})

    def normalise(self, item: dict[str, Any], page: seam.Page) -> Any:
        if not isinstance(item.get("n"), int):
            return seam.Quarantine(f"probe:{item['id']}", f"malformed: n is {item.get('n')!r}")
        return None if item["n"] < 0 else {"id": item["id"], "n": item["n"]}

    def loader(self, conn: Connection) -> seam.Loader:
        return ProbeLoader(conn)


class ProbeLoader:
    def __init__(self, conn: Connection) -> None:
        self.conn, self.inserted = conn, 0

    def add(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self.inserted += self.conn.execute(
                text("INSERT INTO probe_row (id, n) VALUES (:id, :n) ON CONFLICT DO NOTHING"), row
            ).rowcount

    def finish(self) -> seam.Loaded:
        return seam.Loaded(self.inserted)


@pytest.fixture
def probe(engine: Engine) -> Iterator[ProbeApi]:
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE probe_row (id text PRIMARY KEY, n int NOT NULL)"))
    api = ProbeApi([{"id": f"p{i:02}", "n": i} for i in range(7)])

    @asynccontextmanager
    async def open_probe(
        engine: Engine, conn: TenantConnection, options: seam.RunOptions
    ) -> AsyncIterator[ProbeSource]:
        yield ProbeSource(api)

    seam.register(seam.SourceKind(NAME, lambda _: [CONN], open_probe, "probe_interval"))
    yield api
    seam.KINDS.pop(NAME)


def _daemon_ingest(engine: Engine) -> Metrics:
    async def go() -> Metrics:
        calls = CallCounter()
        metrics = Metrics(calls)
        async with make_http_pool() as http:
            work = LiveWork(engine, http, calls, metrics, "test", TelemetrySettings(), 30.0)
            assert work.source_organisations()[NAME] == [ORG]  # scheduled like the others
            await work.ingest(NAME, ORG)
        return metrics

    return asyncio.run(go())


def _rows(engine: Engine) -> list[tuple[str, int]]:
    with engine.connect() as conn:
        return [(r.id, r.n) for r in conn.execute(text("SELECT id, n FROM probe_row ORDER BY id"))]


def _cursor(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return sources.lock(conn, NAME, ORG).cursor


def test_a_source_registered_by_a_test_runs_in_the_daemon_through_the_seam(
    engine: Engine, probe: ProbeApi, db_settings: Settings
) -> None:
    probe.items[3]["n"] = "three"  # does not fit: quarantined
    probe.items[5]["n"] = -5  # not ours: skipped
    metrics = _daemon_ingest(engine)
    assert _rows(engine) == [(f"p{i:02}", i) for i in (0, 1, 2, 4, 6)]
    assert _cursor(engine) == "p06"
    with engine.connect() as conn:
        reason = conn.execute(
            text("SELECT reason FROM telemetry_quarantine WHERE event_id = 'probe:p03'")
        ).scalar_one()
    assert reason == "malformed: n is 'three'"
    assert metrics.source_rows.labels(NAME, ORG)._value.get() == 5

    # A step planned from a checkpoint another replica moved (here to p08, with its rows) is
    # dropped: the run goes on from the moved checkpoint, nothing twice, never backwards.
    probe.items += [{"id": f"p{i:02}", "n": i} for i in range(7, 12)]

    def other_replica() -> None:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO probe_row VALUES ('p07', 7), ('p08', 8)"))
            sources.lock(conn, NAME, ORG)
            sources.advance(conn, NAME, ORG, cursor="p08")

    probe.before_write.append(other_replica)
    run = asyncio.run(seam.ingest_connection(engine, seam.kinds()[NAME], CONN))
    assert run.dropped == 1 and run.error is None
    assert _rows(engine)[-5:] == [(f"p{i:02}", i) for i in range(7, 12)]
    assert _cursor(engine) == "p11"

    # An API failure is the run's recorded error: `status` shows the source failing.
    probe.fail = True
    with pytest.raises(WorkFailed, match="probe API"):
        _daemon_ingest(engine)
    shown = run_cli("status", "--json", env=clean_env(db_settings))
    assert shown.returncode == 3, shown.stderr
    (state,) = [s for s in json.loads(shown.stdout)["sources"] if s["source"] == NAME]
    assert state["failing"] and "probe API" in state["last_error"] and state["org_id"] == ORG
