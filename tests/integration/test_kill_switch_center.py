"""The kill switch through the Command Center (issue 22): the operator API's routes (a viewer
refused, an operator's disable run by the daemon ahead of everything, enable, the errors) and
the console's "Kill switch" page in a real browser; each action in the action log."""

from __future__ import annotations

import re
from typing import Any

import httpx2
from playwright.sync_api import Browser, expect

from claresia_sync.emulator import EmulatorServer
from claresia_sync.publish import jobs
from tests.fixtures.center import OPERATOR, VIEWER, CenterProcess
from tests.fixtures.daemon import wait_until
from tests.integration.test_center_api import _wait_job
from tests.integration.test_center_browser import _log_in
from tests.integration.test_center_browser import browser as browser  # the fixture
from tests.integration.test_kill_switch import SKILL, _seen_anywhere


def _publish_all(c: CenterProcess) -> None:
    """Forced: the `emulator` fixture gave the module's daemon a fresh emulator."""
    job = c.api("POST", "/publish", c.operator_token, json={"force": True}).json()
    assert _wait_job(c, job["id"])["status"] == "succeeded"


def _disabled(c: CenterProcess) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = c.api("GET", "/kill-switch", c.viewer_token).json()
    return found


def test_the_api_disables_on_every_target_and_enables(
    center_module: CenterProcess, emulator: EmulatorServer
) -> None:
    c = center_module
    _publish_all(c)
    assert all(_seen_anywhere(emulator).values())

    path = f"/skills/{SKILL}/disable"
    refused = c.api("POST", path, c.viewer_token, json={"reason": "bad"})
    assert refused.status_code == 403
    no_reason = c.api("POST", path, c.operator_token, json={})
    assert no_reason.status_code == 422 and no_reason.json()["error"]["field"] == "reason"
    nul = c.api("POST", path, c.operator_token, json={"reason": "a\u0000b"})
    assert nul.status_code == 422 and nul.json()["error"]["field"] == "reason"  # not a 500
    unknown = c.api("POST", "/skills/no-such-skill/disable", c.operator_token, json={"reason": "x"})
    assert unknown.status_code == 404 and "catalog list" in unknown.json()["error"]["message"]

    answer = c.api("POST", path, c.operator_token, json={"reason": "wrong figures"})
    assert answer.status_code == 202, answer.text
    job = answer.json()
    assert job["priority"] == jobs.PRIORITY_KILL_SWITCH and job["disabled"] is True
    assert _wait_job(c, job["id"])["status"] == "succeeded"
    assert not any(_seen_anywhere(emulator).values()), _seen_anywhere(emulator)
    [row] = _disabled(c)
    assert (row["skill_id"], row["tenant"], row["reason"], row["job_id"]) == (
        SKILL,
        None,
        "wrong figures",
        job["id"],
    )
    assert row["disabled_by"] == f"center:{OPERATOR}"

    def gauge_says(n: int) -> bool:
        text = httpx2.get(f"http://127.0.0.1:{c.daemon.port}/metrics", timeout=5).text
        return f"claresia_skills_disabled {n}.0" in text

    wait_until(lambda: gauge_says(1), 60, "claresia_skills_disabled 1")

    on = c.api("POST", f"/skills/{SKILL}/enable", c.operator_token, json={})
    assert on.status_code == 202, on.text
    assert _wait_job(c, on.json()["id"])["status"] == "succeeded"
    assert all(_seen_anywhere(emulator).values())
    assert _disabled(c) == []
    twice = c.api("POST", f"/skills/{SKILL}/enable", c.operator_token, json={})
    assert twice.status_code == 409 and "not disabled" in twice.json()["error"]["message"]

    log = c.api("GET", "/actions", c.viewer_token).json()
    mine = [
        (a["action"], a["actor"], a["outcome"]) for a in log if a["action"].startswith("skill.")
    ]
    assert mine[::-1] == [
        ("skill.disable", VIEWER, "refused"),
        ("skill.disable", OPERATOR, "refused"),  # unknown skill (the 422 never acts)
        ("skill.disable", OPERATOR, "ok"),
        ("skill.enable", OPERATOR, "ok"),
        ("skill.enable", OPERATOR, "refused"),
    ]


def test_the_console_switches_a_skill_off_and_on(
    center_module: CenterProcess, browser: Browser, emulator: EmulatorServer
) -> None:
    c = center_module
    _publish_all(c)
    page = _log_in(browser, c, c.operator_token)
    page.click("nav a[href='/kill-switch']")
    expect(page.locator("h1")).to_have_text("Kill switch")
    expect(page.locator("#disabled tbody")).to_contain_text("no skill is disabled")
    page.select_option("#switch-off-skill", SKILL)
    page.select_option("#switch-off-tenant", "dainese")
    page.fill("#switch-off-reason", "a customer complaint")
    page.click("#switch-off button[type=submit]")
    expect(page).to_have_url(re.compile(r"/kill-switch$"))
    row = page.locator("#disabled tbody tr").first
    expect(row).to_contain_text(SKILL)
    expect(row).to_contain_text("dainese")
    expect(row).to_contain_text("a customer complaint")
    job_id = int(row.locator("a").inner_text())
    assert _wait_job(c, job_id)["status"] == "succeeded"
    seen = _seen_anywhere(emulator)
    assert not seen["org-skills dainese"] and seen["org-skills acme"], seen

    row.locator("button", has_text="Enable").click()
    expect(page.locator("#disabled tbody")).to_contain_text("no skill is disabled")
    newest = c.api("GET", "/jobs", c.viewer_token).json()[0]
    assert _wait_job(c, newest["id"])["status"] == "succeeded"
    assert all(_seen_anywhere(emulator).values())

    viewer = _log_in(browser, c, c.viewer_token)
    viewer.goto("/kill-switch")
    expect(viewer.locator("#switch-off")).to_have_count(0)
    expect(viewer.locator("main button")).to_have_count(0)
    assert page.outside == []  # type: ignore[attr-defined]
