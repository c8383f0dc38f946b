"""The advocate's page in a real browser: Playwright drives the system's Chromium (never a downloaded one)
against advocacy's API process with the demo data. An advocate signs in, sees the overdue case first,
records a conclusive-grounds decision and finds the new move-on transition on the case page."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.advocacy.seed_demo import seed
from services.migrate import migrate
from shared.config import Settings
from support.infra import temporary_databases
from support.processes import ROOT, Platform

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "tests" / "artifacts"
PROVIDER = "demo-charity"


@pytest.fixture(scope="module")
def advocacy_page(pg_admin_url, dev_keys, tmp_path_factory) -> Iterator[str]:
    """advocacy's API (gunicorn) on a fresh database seeded as `make run` seeds it, dev sign-in on."""
    with temporary_databases(pg_admin_url) as new_database:
        url = new_database("advocacy_page")
        migrate("advocacy", url)
        env = {
            "ADVOCACY_DATABASE_URL": url,
            "PROVIDER_ID": PROVIDER,
            "AUTH_PUBLIC_KEY_FILE": str(dev_keys[1]),
            "ADVOCACY_DEV_SIGNIN": "true",
            "OTEL_SDK_DISABLED": "true",
        }
        seed(Settings.from_env("advocacy", env=env))
        platform = Platform(tmp_path_factory.mktemp("page"), env)
        try:
            yield platform.start_api("advocacy", {})
        finally:
            platform.stop()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail("the browser test needs Debian's Chromium at /usr/bin/chromium: apt-get install chromium")
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


def test_an_advocate_signs_in_sees_the_overdue_case_first_records_a_cg_and_sees_the_move_on(advocacy_page, browser):
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1200, "height": 900}, locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(15_000)

    # Sign in (dev sign-in: choose an advocate), with the keyboard's skip link first in the tab order.
    page.goto(f"{advocacy_page}/")
    expect(page).to_have_url(re.compile(r"/signin$"))
    page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_text("Skip to main content")
    page.get_by_label("Advocate").select_option(label="Advocate Kalo Demo")
    page.get_by_role("button", name="Sign in").click()

    # My caseload: the overdue case is first.
    expect(page.get_by_role("heading", level=1)).to_have_text("My caseload")
    rows = page.locator("#caseload tbody tr")
    expect(rows).to_have_count(2)
    first = rows.first
    expect(first).to_have_class(re.compile(r"\boverdue\b"))
    expect(first.get_by_text("Overdue")).to_be_visible()
    expect(rows.nth(1)).not_to_have_class(re.compile(r"\boverdue\b"))
    expect(page.get_by_role("heading", name="Upcoming transitions")).to_be_visible()
    expect(page.locator("#upcoming-transitions")).to_contain_text("Turning 18")
    page.screenshot(path=artifact("advocate-caseload.png"), full_page=True)
    person = first.get_by_role("link").inner_text()
    assert "/cases/" in first.get_by_role("link").get_attribute("href")  # ids only in URLs

    # The case page: record a positive CG decision dated today.
    first.get_by_role("link").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(person)
    expect(page.locator("#transitions")).to_have_count(0)  # nothing planned yet for this adult
    form = page.locator("form", has=page.get_by_role("heading", name="Record a decision"))
    form.get_by_label("Decision", exact=True).select_option("cg")
    form.get_by_label("Positive").check()
    form.get_by_label("Date of the decision").fill(datetime.now(UTC).date().isoformat())
    form.get_by_role("button", name="Record decision").click()

    # The move-on transition is now on the case page, with its checklist, and in the timeline.
    expect(page.get_by_role("status")).to_have_text("Positive CG decision recorded.")
    transitions = page.locator("#transitions")
    expect(transitions).to_contain_text("Move-on from NRM support")
    expect(transitions.get_by_label("Receiving agency informed")).not_to_be_checked()
    expect(page.locator("#timeline")).to_contain_text("transition planned")
    expect(page.locator("#clocks")).to_contain_text("Move-on support: ends")
    page.screenshot(path=artifact("advocate-case.png"), full_page=True)
    assert person not in page.url
    context.close()


def test_a_form_post_without_the_session_csrf_token_is_refused(advocacy_page, browser):
    context = browser.new_context()
    response = context.request.post(f"{advocacy_page}/signin/dev", form={"advocate_id": "x", "csrf_token": "forged"})
    assert response.status == 400
    cookie = context.request.get(f"{advocacy_page}/signin").headers.get("set-cookie", "")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    context.close()


def artifact(name: str) -> str:
    """Screenshots go to tests/artifacts/ (git-ignored), for a person to look at."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return str(ARTIFACTS / name)
