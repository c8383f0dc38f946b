"""The advocate's page in a real browser: Playwright drives the system's Chromium (never a downloaded one)
against advocacy's API process with the demo data. An advocate signs in, sees the overdue case first,
records a conclusive-grounds decision and finds the new move-on transition on the case page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from services.advocacy import domain
from services.advocacy.bootstrap import bootstrap
from services.advocacy.demo_cases import demo_id
from services.advocacy.models import Offer
from shared.config import Settings
from support.advocate_page import PROVIDER, demo_advocacy
from support.processes import ROOT

ARTIFACTS = ROOT / "tests" / "artifacts"


@pytest.fixture(scope="module")
def advocacy_page(pg_admin_url, dev_keys, tmp_path_factory) -> Iterator[str]:
    """advocacy's API (gunicorn) on a fresh database seeded as `make run` seeds it, dev sign-in on."""
    with demo_advocacy(pg_admin_url, dev_keys, tmp_path_factory.mktemp("page"), "advocacy_page", offer_two) as url:
        yield url


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
    expect(page.locator("#timeline")).to_contain_text("Transition planned")
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


OFFERS = ("e2e-offer-accept", "e2e-offer-decline")


def offer_two(settings: Settings) -> None:
    """Two pending offers in the inbox, as `referral.offered` would record them (summaries only)."""
    advocacy = bootstrap(settings, instrument=False)
    now = datetime.now(UTC)
    summaries = (
        {"org_id": "demo-police", "is_child": False, "pathway": "nrm", "region": "london", "languages": ["sq"],
         "interpreter_needed": True, "exploitation_types": ["labour"], "needs": ["accommodation", "legal"]},
        {"org_id": "demo-police", "is_child": True, "pathway": "nrm", "region": "wales", "languages": ["cy", "en"],
         "exploitation_types": ["criminal"], "needs": ["education"], "immediate_danger": True},
    )  # fmt: skip
    with advocacy.unit_of_work() as uow:
        for offer_id, summary, hours in zip(OFFERS, summaries, (5.5, 20.5), strict=True):
            uow.offers.add(
                Offer(id=offer_id, provider_id=PROVIDER, referral_id=f"referral-{offer_id}",
                      status=domain.OFFER_PENDING, summary=summary, offered_at=now,
                      respond_by=now + timedelta(hours=hours), received_at=now, updated_at=now)
            )  # fmt: skip
    advocacy.engine.dispose()


def test_a_coordinator_answers_the_inbox_finds_a_case_by_name_and_closes_it(advocacy_page, browser):
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1200, "height": 900}, locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{advocacy_page}/signin")
    page.get_by_label("Advocate").select_option(label="Coordinator Sazu Demo (coordinator)")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"^Caseload of "))

    # The inbox: two offers with their countdown; accept one choosing an advocate, decline the other with a code.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Inbox").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Inbox")
    first = page.locator(f'li[data-offer-id="{OFFERS[0]}"]')
    expect(first).to_contain_text("answer within 5 hours")
    expect(first).to_contain_text("interpreter needed")
    page.screenshot(path=artifact("inbox.png"), full_page=True)
    choice = first.get_by_label("Advocate")
    mizu = next(o for o in choice.locator("option").all_inner_texts() if o.startswith("Advocate Mizu Demo: "))
    assert re.search(r": \d+ of \d+ cases, speaks ", mizu)
    choice.select_option(label=mizu)
    first.get_by_role("button", name="Accept").click()
    expect(page.get_by_role("status")).to_have_text("Offer accepted.")
    second = page.locator(f'li[data-offer-id="{OFFERS[1]}"]')
    expect(second).to_contain_text("Immediate danger")
    second.get_by_label("Reason").select_option(label="Needs we cannot meet")
    second.get_by_role("button", name="Decline").click()
    expect(page.get_by_role("status")).to_have_text("Offer declined.")
    answered = page.locator("#answered")
    expect(answered).to_contain_text("Declined: Needs we cannot meet")
    expect(page.locator("#offers")).to_have_count(0)
    page.screenshot(path=artifact("inbox-answered.png"), full_page=True)

    # Find a case by name: the search is a POST, the URL never holds the name.
    case_id = demo_id(PROVIDER, 104, "case")  # the Scotland case
    page.goto(f"{advocacy_page}/cases/{case_id}")
    person = page.get_by_role("heading", level=1).inner_text()
    expect(page.locator("#person")).to_contain_text("Do not leave a message")
    page.screenshot(path=artifact("case-details.png"), full_page=True)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Find a case").click()
    page.get_by_role("searchbox", name="Name or reference").fill(person.split()[0].lower())
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#results")).to_contain_text(person)
    assert person.split()[0] not in page.url and page.url.endswith("/search")
    page.screenshot(path=artifact("search.png"), full_page=True)

    # On the case page: three contacts, a note, a risk flag.
    page.locator("#results").get_by_role("link", name=person).click()
    contact = page.locator("form", has=page.get_by_role("heading", name="Log a contact"))
    now = datetime.now(UTC)
    for hours_ago, how, outcome in ((50, "Phone", "No answer"), (26, "Text message", "Message left"),
                                    (2, "In person", "Reached")):  # fmt: skip
        contact.get_by_label("When (UTC)").fill((now - timedelta(hours=hours_ago)).strftime("%Y-%m-%dT%H:%M"))
        contact.get_by_label("How").select_option(label=how)
        contact.get_by_label("Outcome").select_option(label=outcome)
        contact.get_by_role("button", name="Log contact").click()
        expect(page.get_by_role("status")).to_have_text("Contact logged.")
    expect(page.locator("#contacts tbody tr")).to_have_count(1 + 3)  # the demo seed's one, and these three
    note = "Synthetic note: prefers a female interpreter."
    page.get_by_label("Note", exact=True).fill(note)
    page.get_by_role("button", name="Add note").click()
    expect(page.locator("#notes")).to_contain_text(note)
    expect(page.locator("#timeline")).not_to_contain_text(note)  # "note added by", never the text
    risk = page.locator("form", has=page.get_by_role("heading", name="Raise a risk flag"))
    risk.get_by_label("Kind of risk").select_option(label="Re-trafficking")
    risk.get_by_label("Level").select_option(label="High")
    risk.get_by_label("Review by").fill((now + timedelta(days=7)).date().isoformat())
    risk.get_by_role("button", name="Raise flag").click()
    expect(page.get_by_role("status")).to_have_text("Risk flag raised.")
    expect(page.locator("#risks")).to_contain_text("Re-trafficking")
    page.screenshot(path=artifact("case-care.png"), full_page=True)

    # Close the case from its page: the caseload no longer lists it.
    page.get_by_label("How the case ended").select_option(label="Moved on from support")
    page.get_by_role("button", name="Close case").click()
    expect(page.get_by_role("status")).to_have_text("Case closed.")
    expect(page.locator("#timeline")).to_contain_text("Case closed")
    page.screenshot(path=artifact("case-closed.png"), full_page=True)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="My caseload").click()
    expect(page.locator(f'tr[data-case-id="{case_id}"]')).to_have_count(0)
    page.screenshot(path=artifact("caseload-coordinator.png"), full_page=True)
    context.close()


def artifact(name: str) -> str:
    """Screenshots go to tests/artifacts/ (git-ignored), for a person to look at."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return str(ARTIFACTS / name)
