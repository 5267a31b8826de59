"""The console's releases and rollouts page in a real browser (Playwright, Debian's chromium):
an operator sees the releases, a rollout's waves, tenants, guardrail readings and next step,
promotes the next wave and rolls the rollout back; a viewer sees no button."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import Engine

from claresia_sync.emulator import EmulatorServer
from tests.fixtures.center import CenterProcess
from tests.fixtures.daemon import wait_until
from tests.integration.test_center_browser import _log_in
from tests.integration.test_center_browser import browser as browser  # the fixture
from tests.integration.test_rollouts import (
    FAST,
    NEW_SUMMARY,
    OLD_SUMMARY,
    content_hash,
    recorded,
    release_two,
    remote_skill_md,
)

pytestmark = pytest.mark.timeout(1200)


def test_an_operator_promotes_and_rolls_back_from_the_console(
    center: Callable[..., CenterProcess],
    daemon_env: dict[str, str],
    engine: Engine,
    emulator: EmulatorServer,
    browser: Browser,
    tmp_path: Path,
) -> None:
    release_two(daemon_env, tmp_path)
    c = center(env=FAST)
    plan = "waves: [{name: canary, tenants: [acme], soak: 1h}, {name: rest, share: 100%}]\n"
    started = c.api("POST", "/rollouts", c.operator_token, json={"release": 2, "plan": plan})
    assert started.status_code == 202, started.text
    rollout_id = started.json()["rollout"]["id"]

    page = _log_in(browser, c, c.operator_token)
    page.click("nav a:has-text('Releases & rollouts')")
    expect(page.locator("#releases tbody tr")).to_have_count(2)
    expect(page.locator("#rollouts tbody tr")).to_have_count(1)
    expect(page.locator("#rollout-status")).to_have_text("running")
    expect(page.locator("#wave-1 .wave-tenants")).to_contain_text("acme")
    expect(page.locator("#wave-2 .wave-tenants")).to_contain_text("not moved")

    # acme live and soaking: the readings and the next step show (a reload picks them up)
    def soaking() -> bool:
        page.reload()
        return page.locator("#wave-1").get_attribute("data-status") == "soaking"

    wait_until(soaking, 90, "the canary soaking")
    expect(page.locator("#wave-1 .readings")).to_contain_text("meeting-summary")
    expect(page.locator("#rollout-next")).to_contain_text("wave 1 (canary): soaking until")

    page.click("#promote")  # the next wave now, without waiting out the soak
    expect(page.locator("#wave-1")).to_have_attribute("data-status", "passed")
    expect(page.locator("#wave-2")).to_have_attribute("data-status", "publishing")
    expect(page.locator("#wave-2 .wave-tenants")).not_to_contain_text("not moved")

    viewer = _log_in(browser, c, c.viewer_token)  # the same running rollout, no button
    viewer.goto(f"/rollouts/{rollout_id}")
    expect(viewer.locator("#rollout-status")).to_have_text("running")
    expect(viewer.locator("#rollout-next")).to_be_visible()
    expect(viewer.locator("#rollback, #promote, #halt")).to_have_count(0)

    page.click("#rollback")
    expect(page.locator("#rollout-status")).to_have_text("rolled_back")
    expect(page.locator("#promote")).to_have_count(0)

    def rolled_back() -> bool:
        view = c.api("GET", f"/rollouts/{rollout_id}", c.viewer_token).json()
        tenants = [t for w in view["waves"] for t in w["tenants"]]
        return all(t["rollback_job_status"] == "succeeded" for t in tenants)

    wait_until(rolled_back, 120, "every rollback job")
    assert recorded(engine)["acme"] == content_hash("acme", OLD_SUMMARY)
    assert NEW_SUMMARY not in remote_skill_md(emulator, "ferretti")
    actions = [a["action"] for a in c.api("GET", "/actions", c.viewer_token).json()]
    assert actions[:2] == ["rollout.rollback", "rollout.promote"]
    assert page.outside == []  # type: ignore[attr-defined]
