"""The console in a real browser: Playwright driving Debian's chromium (`/usr/bin/chromium`,
installed by .ci/run) against a real daemon serving the Command Center.

An operator logs in, sees a tenant, opens its plan, presses "Republish all", confirms after
reading the plan, watches the job finish, and sees a telemetry chart; a viewer has no button to
act; a form whose CSRF token was tampered with is refused."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from claresia_sync.emulator import EmulatorServer
from tests.fixtures.analyst import SINCE, fill_every_source
from tests.fixtures.center import CenterProcess, publish_everything
from tests.fixtures.daemon import wait_until
from tests.fixtures.emulator import DAINESE_ORG
from tests.fixtures.system import debian_program

# A fresh machine installs chromium in the browser fixture first (apt-get, 900 s bound).
pytestmark = pytest.mark.timeout(1200)

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        chromium = debian_program("chromium", "chromium")
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        yield browser
        browser.close()


def _log_in(browser: Browser, c: CenterProcess, token: str) -> Page:
    page = browser.new_context(base_url=c.url).new_page()
    page.set_default_timeout(30_000)
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(c.url) else None)
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login$"))  # not logged in: the login page
    page.fill("input[name=token]", token)
    page.click("#login button[type=submit]")
    expect(page.locator("#who")).to_be_visible()
    page.outside = outside  # type: ignore[attr-defined]
    return page


def _bars_drawn(page: Page, metric: str) -> int:
    """Bars of a non-zero height in the chart of `metric`, once the chart is drawn."""
    expect(page.locator(f".chart[data-metric={metric}] svg.bars")).to_be_attached()
    bars = page.locator(f".chart[data-metric={metric}] svg rect.bar")
    heights = bars.evaluate_all("bars => bars.map(b => Number(b.getAttribute('height')))")
    return sum(1 for h in heights if h > 0)


def test_an_operator_republishes_all_and_watches_it(
    center_module: CenterProcess, browser: Browser, emulator: EmulatorServer
) -> None:
    c = center_module
    page = _log_in(browser, c, c.operator_token)

    # a tenant, and its plan before anything was published: skills to create
    row = page.locator("#tenants tr[data-tenant=dainese]")
    expect(row).to_be_visible()
    expect(row.locator(".live")).to_have_text("0")
    row.locator("a", has_text="dainese").click()
    page.click("#open-plan")
    expect(page.locator("h1")).to_have_text("Plan of dainese")
    expect(page.locator("#plan tr.op-create").first).to_be_visible()
    creates = page.locator("#plan tr.op-create").count()
    assert creates > 0
    assert emulator.stats.writes() == 0  # the plan is a dry run

    # Republish all: the forced plan of every organisation, then confirm
    page.goto("/")
    page.click("#republish-all")
    expect(page.locator("h1")).to_have_text("Republish all: the plan")
    expect(page.locator("#plan-counts")).to_contain_text("compared with each organisation")
    assert page.locator("#plan tr.op-create").count() > creates  # every tenant
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#confirm-button")
    expect(page).to_have_url(re.compile(r"/jobs/\d+$"))
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=60_000)
    results = page.locator("#job-results tbody tr.status-published")
    expect(results.first).to_be_visible()
    assert results.count() == page.locator("#job-results tbody tr").count() > creates

    # the tenant now has live skills
    page.goto("/")
    expect(page.locator("#tenants tr[data-tenant=dainese] .live")).not_to_have_text("0")

    # telemetry: users invoke skills; the charts per day show them
    emulator.state.generate_invocations(DAINESE_ORG, 30, failure_rate=0.2, seed=11)
    wait_until(
        lambda: c.api("GET", "/telemetry/summary", c.viewer_token).json() != [], 30, "ingestion"
    )
    page.goto("/telemetry?tenant=dainese")
    chart = page.locator(".chart[data-metric=audit_runs] svg.bars")
    expect(chart).to_have_attribute("data-points", "1")
    assert chart.locator("rect.bar").count() == 1
    expect(page.locator(".chart[data-metric=failure_rate] svg rect.bar")).to_have_count(1)
    expect(page.locator("#telemetry-summary tbody tr").first).to_contain_text("dainese")
    assert page.outside == []  # type: ignore[attr-defined]  # nothing loaded from elsewhere


def test_a_viewer_cannot_act_and_a_forged_form_is_refused(
    center_module: CenterProcess, browser: Browser
) -> None:
    c = center_module
    jobs_before = c.api("GET", "/jobs", c.viewer_token).json()
    viewer = _log_in(browser, c, c.viewer_token)
    expect(viewer.locator("#tenants tr[data-tenant=dainese]")).to_be_visible()
    expect(viewer.locator("#republish-all")).to_have_count(0)
    viewer.goto("/republish")
    expect(viewer.locator("#plan")).to_be_visible()  # a viewer may read the plan
    expect(viewer.locator("main button")).to_have_count(0)
    expect(viewer.locator("#confirm")).to_have_count(0)
    # posting the form anyway (with a valid CSRF token of its session) is refused
    token = viewer.locator("header input[name=csrf]").get_attribute("value")
    answer = viewer.request.post("/publish", form={"csrf": token or "", "tenant": "dainese"})
    assert answer.status == 403 and "viewer" in answer.text()

    operator = _log_in(browser, c, c.operator_token)
    operator.goto("/republish")
    # a request without the CSRF token (as another site's form would send) is refused
    answer = operator.request.post("/publish", form={"tenant": "dainese"})
    assert answer.status == 403 and "CSRF" in answer.text()
    # and so is the page's own form once its token is tampered with
    operator.eval_on_selector("#confirm input[name=csrf]", "e => e.value = 'f'.repeat(64)")
    operator.once("dialog", lambda dialog: dialog.accept())
    operator.click("#confirm-button")
    expect(operator.locator("#error")).to_contain_text("CSRF")
    assert c.api("GET", "/jobs", c.viewer_token).json() == jobs_before  # nothing queued


def test_a_tenant_page_says_who_gets_its_skills_and_every_organisation_shows(
    center_module: CenterProcess, browser: Browser, emulator: EmulatorServer
) -> None:
    c = center_module
    publish_everything(c)
    page = _log_in(browser, c, c.viewer_token)
    organisations = page.locator("#organisations")
    for org in ("org_dainese", "org_acme", "org_ferretti", "org_vespucci"):
        expect(organisations.locator(f"tr[data-org={org}]").first).to_be_visible()
    expect(organisations.locator("tr[data-org=org_vespucci]")).to_contain_text(
        "claude-api:wrkspc_vespucci_support"
    )
    expect(
        organisations.locator("tr[data-org=org_ferretti][data-source=activity-feed]")
    ).to_be_visible()

    page.goto("/tenants/ferretti")
    expect(page.locator("#targets")).to_contain_text("claude-enterprise in org_ferretti")
    expect(page.locator("#archetypes tr[data-archetype=designer] .installation")).to_have_text(
        "available to install"
    )
    prd = page.locator("#publications tr[data-skill=prd-review] .access")
    expect(prd).to_contain_text("everyone else in the organisation: not available")
    expect(prd).to_contain_text(
        "group rbac_group_ferretti_designers (archetype ferretti/designer): available to install"
    )
    expect(page.locator("#publications code")).to_have_count(0)  # no raw JSON any more
    page.goto("/tenants/vespucci")
    expect(page.locator("#workspaces")).to_contain_text(
        "vespucci-support (wrkspc_vespucci_support)"
    )
    expect(page.locator("#publications tr[data-skill=meeting-summary] .access")).to_have_text(
        "workspace vespucci-support (wrkspc_vespucci_support): every API key of it"
    )
    assert page.outside == []  # type: ignore[attr-defined]


def test_the_telemetry_page_shows_every_source_and_filters(
    center_module: CenterProcess, browser: Browser
) -> None:
    c = center_module
    assert c.engine is not None
    fill_every_source(c.engine)
    page = _log_in(browser, c, c.viewer_token)
    page.goto(f"/telemetry?since={SINCE.isoformat()}")
    table = page.locator("#telemetry-by-source")
    # (the users of the first test ran dainese's skills today: an event of no named skill is
    # the audit log's row that is this test's alone)
    audit = table.locator('tr[data-tenant=dainese-eng][data-skill=""]')
    expect(audit.locator(".audit-poller")).to_have_text("1")
    expect(audit).to_contain_text("(unnamed)")
    prd = table.locator("tr[data-tenant=ferretti][data-skill=prd-review]")
    expect(prd.locator(".claude-code-otlp")).to_have_text("3")
    expect(prd.locator(".skills-analytics")).to_have_text("19")
    expect(prd.locator(".activity-feed")).to_have_text("2")
    only_activity = table.locator("tr[data-tenant=ferretti][data-skill=sprint-planning]")
    expect(only_activity.locator(".activity-feed")).to_have_text("1")
    # a chart per source, each with a bar on the days it has something
    for metric in ("audit_runs", "claude_code_activations", "apps_invocations", "lifecycle_events"):
        assert _bars_drawn(page, metric) > 0, metric

    # filtered by source (the form): only the rows the skills analytics has something in
    page.select_option("#filters select[name=source]", "skills-analytics")
    page.click("#filters button[type=submit]")
    expect(page).to_have_url(re.compile(r"source=skills-analytics"))
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(table.locator("tbody tr")).to_have_attribute("data-skill", "prd-review")
    expect(page.locator(".chart")).to_have_count(3)  # its own and the two totals
    # by tenant and skill
    page.goto(f"/telemetry?since={SINCE.isoformat()}&tenant=ferretti&skill=sprint-planning")
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(table.locator("tbody tr .activity-feed")).to_have_text("1")
    chart = page.locator(".chart[data-metric=lifecycle_events] svg.bars")
    expect(chart).to_have_attribute("data-points", "1")
    page.goto("/telemetry?source=rumour")
    expect(page.locator("#error")).to_contain_text("'rumour' is not a source")
    assert page.outside == []  # type: ignore[attr-defined]


def test_the_skill_page_shows_what_users_get_where_it_is_live_and_its_use(
    center_module: CenterProcess, browser: Browser
) -> None:
    c = center_module
    assert c.engine is not None
    publish_everything(c)
    fill_every_source(c.engine)
    page = _log_in(browser, c, c.viewer_token)
    page.goto("/tenants/ferretti")
    page.locator("#publications tr[data-skill=prd-review] a", has_text="prd-review").click()
    expect(page).to_have_url(re.compile(r"/skills/prd-review\?tenant=ferretti$"))
    expect(page.locator("#skill-md")).to_contain_text("name: claresia-ferretti-prd-review")
    expect(page.locator("#skill-md-source")).to_contain_text("live as shown on 1 target(s)")
    live = page.locator("#skill-publications tr[data-target=claude-enterprise]")
    expect(live).to_have_count(1)
    expect(live.locator(".remote-id")).not_to_be_empty()
    expect(live.locator(".access")).to_contain_text("available to install")
    expect(page.locator("#skill-history tr[data-action=published]").first).to_be_visible()

    page.goto(f"/skills/prd-review?tenant=ferretti&since={SINCE.isoformat()}")
    use = page.locator("#skill-use tr[data-tenant=ferretti]")
    expect(use.locator(".claude-code-otlp")).to_have_text("3")
    expect(use.locator(".skills-analytics")).to_have_text("19")
    expect(use.locator(".activity-feed")).to_have_text("2")
    for metric in ("claude_code_activations", "apps_invocations", "lifecycle_events"):
        assert _bars_drawn(page, metric) > 0, metric
    assert _bars_drawn(page, "audit_runs") == 0  # ferretti's users have no audit log

    # every tenant granted it: where it is live on each target
    page.click("text=every tenant")
    rows = page.locator("#skill-publications tbody tr")
    expect(rows).to_have_count(3)
    expect(page.locator("#skill-publications tr[data-tenant=acme]")).to_contain_text("org-skills")
    assert page.outside == []  # type: ignore[attr-defined]
