"""Log output: JSON lines for the daemon, and keys masked even if one slips into a message."""

from __future__ import annotations

import json
import logging

import pytest

from claresia_sync.logs import configure_logging, mask_keys

CANARY = "sk-ant-admin01-CANARY-logs-0123456789abcdef0123456789abcdefWXYZ"


def test_json_lines_with_masked_keys(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("json", logging.INFO)
        log = logging.getLogger("claresia_sync.test")
        log.info("published %s with key %s", "claresia-dainese-x", CANARY)
        try:
            raise RuntimeError(f"bad key {CANARY}")
        except RuntimeError:
            log.exception("failed")
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    lines = capsys.readouterr().err.strip().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["event"].split(" ")[0] for r in records] == ["published", "failed"]
    assert records[0]["level"] == "info" and records[0]["logger"] == "claresia_sync.test"
    assert "WXYZ" in records[0]["event"]
    assert CANARY not in "\n".join(lines)
    assert CANARY[:-4] not in "\n".join(lines)


def test_mask_keys_keeps_only_the_last_four() -> None:
    assert mask_keys(f"key={CANARY}!") == "key=sk-ant-…WXYZ!"


def test_context_fields_are_json_keys_in_threads_too(capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio

    from claresia_sync.logs import log_context

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    log = logging.getLogger("claresia_sync.test")

    async def job() -> None:
        with log_context(org_id="org_dainese", tenant="dainese"):
            with log_context(job_id=7):
                await asyncio.to_thread(log.info, "applied")
            log.info("polled")
        log.info("idle")

    try:
        configure_logging("json", logging.INFO)
        asyncio.run(job())
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    records = [json.loads(line) for line in capsys.readouterr().err.strip().splitlines()]
    fields = [{k: r.get(k) for k in ("event", "org_id", "tenant", "job_id")} for r in records]
    assert fields == [
        {"event": "applied", "org_id": "org_dainese", "tenant": "dainese", "job_id": 7},
        {"event": "polled", "org_id": "org_dainese", "tenant": "dainese", "job_id": None},
        {"event": "idle", "org_id": None, "tenant": None, "job_id": None},
    ]


@pytest.mark.parametrize("root_level", [logging.INFO, logging.DEBUG])
def test_scheduler_chatter_goes_to_debug(
    capsys: pytest.CaptureFixture[str], root_level: int
) -> None:
    from claresia_sync.logs import SCHEDULER_LOGGER

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("json", root_level)
        logging.getLogger(SCHEDULER_LOGGER).info('Added job "poll:org_x" to job store "default"')
        logging.getLogger("apscheduler.executors.default").info("Running job poll org_x")
        logging.getLogger(SCHEDULER_LOGGER).warning("Run time of job poll was missed by 0:00:03")
        logging.getLogger("claresia_sync.daemon.service").info("polled org_x: 3 new event(s)")
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    records = [json.loads(line) for line in capsys.readouterr().err.strip().splitlines()]
    levels = [(r["level"], r["event"].split(" ")[0]) for r in records]
    if root_level == logging.INFO:
        assert levels == [("warning", "Run"), ("info", "polled")]
    else:
        assert levels == [
            ("debug", "Added"),
            ("debug", "Running"),
            ("warning", "Run"),
            ("info", "polled"),
        ]
