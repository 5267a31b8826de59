"""`claresia_api_calls_total` counts every API call of the process, publishing included, where
the HTTP pool is built (issue 13 item 4); `claresia_build_info` and the last-success gauges."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text

from claresia_sync.api import OrgClient, make_http_pool
from claresia_sync.api.call_metrics import API_CALLS, route_template
from claresia_sync.emulator import EmulatorServer
from tests.fixtures.daemon import DaemonProcess, free_port, wait_until
from tests.fixtures.emulator import DAINESE_KEY
from tests.integration.test_api_client import admin_key

CREATE = "/v1/organizations/{org_id}/skills"


def test_paths_without_a_named_route_keep_few_labels() -> None:
    assert route_template("/v1/organizations/org_dainese/skills/skill_01JDX3ABCDEF") == (
        "/v1/organizations/{id}/skills/{id}"
    )
    assert route_template("/v1/skills/skill_01abcdef/versions/1759178010641129") == (
        "/v1/skills/{id}/versions/{id}"
    )
    assert route_template("/v1/organizations/me") == "/v1/organizations/me"


@pytest.mark.anyio
async def test_every_call_through_a_built_pool_is_counted(emulator: EmulatorServer) -> None:
    before = API_CALLS.total(route="/v1/organizations/me")
    refused_before = API_CALLS.total(status="connection_error")
    emulator.set_faults(script=[429], retry_after_s=0)
    async with make_http_pool() as pool:
        async with OrgClient(emulator.base_url, admin_key(), http=pool) as client:
            await client.get_organization()  # 429, then 200 on the retry
        dead = f"http://127.0.0.1:{free_port()}"
        async with OrgClient(dead, admin_key(), http=pool, max_attempts=1) as nowhere:
            with pytest.raises(Exception, match="reaching"):
                await nowhere.get_organization()
        # a caller that is not the OrgClient is counted too, under a templated route
        await pool.get(emulator.base_url + "/v1/organizations/org_dainese/skills")
    assert API_CALLS.total(route="/v1/organizations/me") - before == 3
    assert API_CALLS.total(status="connection_error") - refused_before == 1
    assert API_CALLS.total(route="/v1/organizations/{id}/skills") >= 1, API_CALLS.samples()


def _scrape(daemon: DaemonProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body = httpx2.get(f"http://127.0.0.1:{daemon.port}/metrics", timeout=5).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def _job(engine: Engine, force: bool = False) -> int:
    with engine.begin() as conn:
        return int(
            conn.execute(
                text("INSERT INTO publish_job (force) VALUES (:f) RETURNING id"), {"f": force}
            ).scalar_one()
        )


def _finished(engine: Engine, job_id: int) -> str | None:
    with engine.connect() as conn:
        status = conn.execute(
            text("SELECT status FROM publish_job WHERE id = :i"), {"i": job_id}
        ).scalar_one()
    return str(status) if status in ("succeeded", "partial", "failed") else None


def test_the_daemon_counts_publishing_calls_with_their_status(
    start_daemon: Callable[..., DaemonProcess], engine: Engine, emulator: EmulatorServer
) -> None:
    # The first create of the job is refused (403), the next one rate limited (429, retried).
    emulator.set_faults(routes=[f"POST {CREATE}"], script=[403, 429], retry_after_s=0)
    daemon = start_daemon()
    first = _job(engine)
    wait_until(lambda: _finished(engine, first) is not None, 30, "the first job")
    assert _finished(engine, first) == "partial"
    emulator.set_faults()
    second = _job(engine, force=True)  # repairs the refused skill
    wait_until(lambda: _finished(engine, second) is not None, 30, "the second job")
    assert _finished(engine, second) == "succeeded"
    wait_until(
        lambda: any(
            name == "claresia_audit_poll_last_success_timestamp_seconds"
            for name, _ in _scrape(daemon)
        ),
        15,
        "a successful poll",
    )
    samples = _scrape(daemon)

    def calls(method: str, status: str) -> float:
        labels = (("method", method), ("route", CREATE), ("status", status))
        return samples.get(("claresia_api_calls_total", labels), 0)

    # what the documented alerts select: status=~"401|403" and status="429", here on publish
    assert calls("POST", "403") == 1 and calls("POST", "429") == 1
    assert calls("POST", "201") > 0
    build = [labels for name, labels in samples if name == "claresia_build_info"]
    assert build and dict(build[0])["version"]
    now = time.time()
    polled = samples[
        ("claresia_audit_poll_last_success_timestamp_seconds", (("org_id", "org_dainese"),))
    ]
    published = samples[("claresia_publish_last_success_timestamp_seconds", (("tenant", "all"),))]
    assert now - 60 < polled <= now and now - 60 < published <= now
    assert daemon.stop()[0] == 0
    assert DAINESE_KEY not in "".join(str(k) for k in samples)
