"""The advocate's page is accessible (WCAG 2.2 AA): axe-core, the npm package pinned in tests/contracts, is
injected into every page of it in Debian's Chromium and must find no violation; and a keyboard alone (Tab,
Shift+Tab, Enter, Space, typing) accepts an offer, logs a contact and closes a case, with a visible focus."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.advocacy import domain
from services.advocacy.bootstrap import bootstrap
from services.advocacy.demo_cases import demo_id
from services.advocacy.models import Handover, Offer
from shared.config import Settings
from support.advocate_page import PROVIDER, demo_advocacy
from support.processes import ROOT

AXE = ROOT / "tests" / "contracts" / "node_modules" / "axe-core" / "axe.min.js"  # `make test` installs it
WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
LANGUAGES = ("en", "cy")  # the page's languages: each page is audited in each
CLOSED_IN = {"en": 103, "cy": 101}  # the demo case each language's audit closes (the keyboard walk closes 104)
OFFERS = ("a11y-offer-keyboard", "a11y-offer-pending", "a11y-offer-declined")
HANDOVER = "a11y-handover"


@pytest.fixture(scope="module")
def page_url(pg_admin_url, dev_keys, tmp_path_factory) -> Iterator[str]:
    """advocacy's API on a fresh database with the demo data, offers pending and answered, and a handover."""
    if not AXE.exists():
        pytest.fail(f"axe-core is not installed at {AXE}: run `npm ci --prefix tests/contracts` (make test does)")
    with demo_advocacy(pg_admin_url, dev_keys, tmp_path_factory.mktemp("a11y"), "advocacy_a11y", inbox) as url:
        yield url


def inbox(settings: Settings) -> None:
    """Two pending offers, a declined one and a pending handover, as the events would record them."""
    advocacy = bootstrap(settings, instrument=False)
    now = datetime.now(UTC)
    summary = {"org_id": "demo-police", "is_child": False, "pathway": "nrm", "region": "london", "languages": ["sq"],
               "interpreter_needed": True, "exploitation_types": ["labour"], "needs": ["accommodation"]}  # fmt: skip
    with advocacy.unit_of_work() as uow:
        for offer_id in OFFERS:
            declined = offer_id.endswith("declined")
            uow.offers.add(
                Offer(id=offer_id, provider_id=PROVIDER, referral_id=f"referral-{offer_id}", summary=summary,
                      status=domain.OFFER_DECLINED if declined else domain.OFFER_PENDING,
                      decline_reason="capacity" if declined else None, responded_at=now if declined else None,
                      offered_at=now, respond_by=now + timedelta(hours=6), received_at=now, updated_at=now)
            )  # fmt: skip
        uow.handovers.add(
            Handover(id=HANDOVER, provider_id=PROVIDER, from_provider_id="charity-from", referral_id="r-a11y",
                     from_case_id="c-a11y", status=domain.HANDOVER_PENDING, summary=summary, offered_at=now,
                     respond_by=now + timedelta(hours=72), received_at=now)
        )  # fmt: skip
    advocacy.engine.dispose()


def new_page(browser):
    # The page's CSP (script-src 'self') would refuse the injected axe script: bypass it in the test browser only.
    context = browser.new_context(viewport={"width": 1200, "height": 900}, locale="en-GB", bypass_csp=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    return page


def with_lang(url: str, lang: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}lang={lang}"


def sign_in(page, base: str, lang: str, who: str) -> None:
    page.goto(with_lang(f"{base}/signin", lang))
    choice = page.locator("select[name=advocate_id]")
    choice.select_option(choice.locator("option", has_text=who).get_attribute("value"))  # a name: not translated
    page.locator("form[action$='/signin/dev'] button[type=submit]").click()
    page.wait_for_load_state()


def violations(page) -> list[dict[str, Any]]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG_AA)
    return result["violations"]


def describe(found: list[dict[str, Any]]) -> str:
    lines = []
    for violation in found:
        lines.append(f"{violation['id']} ({violation['impact']}): {violation['help']}")
        for node in violation["nodes"]:
            lines.append(f"    {json.dumps(node['target'])}: {node.get('failureSummary', '').splitlines()[-1:]}")
    return "\n".join(lines)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_axe_finds_no_wcag_2_2_aa_violation_on_any_page_of_the_advocates_page(page_url, browser, lang):
    from playwright.sync_api import expect

    found: dict[str, str] = {}

    def audit(name: str) -> None:
        if problems := violations(page):
            found[f"{name} ({page.url})"] = describe(problems)

    page = new_page(browser)
    page.goto(with_lang(f"{page_url}/signin", lang))
    audit("sign-in")

    # An advocate: their caseload (with the upcoming transitions), a case page, the search form and results.
    sign_in(page, page_url, lang, "Advocate Kalo Demo")
    expect(page.locator("#upcoming-transitions")).to_be_visible()
    audit("caseload of an advocate")
    page.goto(with_lang(f"{page_url}/search", lang))
    audit("search form")
    page.locator("input[type=search]").fill("demo")
    page.locator("form[action$='/search'] button[type=submit]").click()
    page.wait_for_load_state()
    audit("search results")
    page.context.close()

    # A coordinator: the caseload with needs attention and filters, the inbox, case pages with every form.
    page = new_page(browser)
    sign_in(page, page_url, lang, "Coordinator Sazu Demo")
    audit("caseload of a coordinator")
    page.goto(with_lang(f"{page_url}/caseload?page=2", lang))
    audit("caseload, second page")
    page.goto(with_lang(f"{page_url}/offers", lang))
    expect(page.locator(f'li[data-offer-id="{OFFERS[1]}"]')).to_be_visible()
    expect(page.locator("#answered")).to_be_visible()
    audit("inbox with pending offers, a handover and answered offers")
    page.goto(with_lang(f"{page_url}/search", lang))
    page.locator("input[type=search]").fill("   ")  # blank: the form's error
    page.locator("form[action$='/search'] button[type=submit]").click()
    page.wait_for_load_state()
    audit("search with an error")
    for number in (101, 102, 103, 104):
        page.goto(with_lang(f"{page_url}/cases/{demo_id(PROVIDER, number, 'case')}", lang))
        audit(f"case page {number}")
    case = f"{page_url}/cases/{demo_id(PROVIDER, CLOSED_IN[lang], 'case')}"
    page.goto(with_lang(case, lang))
    closure = page.locator("form[action$='/closure']")
    closure.locator("select").first.select_option(index=1)
    closure.locator("button[type=submit]").click()
    expect(page.get_by_role("status")).to_be_visible()
    audit("closed case with a confirmation")
    page.goto(with_lang(case, lang))
    audit("closed case")
    # A case not found (404) or a form an advocate may not use (403) answers with the API's JSON error body,
    # not a page: there is no error page to audit.
    page.context.close()

    assert not found, "axe found WCAG 2.2 AA violations:\n" + "\n".join(f"{k}:\n{v}" for k, v in found.items())


# --- the keyboard alone ----------------------------------------------------------------------------------

FOCUSED = """() => {
  const el = document.activeElement, style = getComputedStyle(el);
  const outlined = style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0;
  return {id: el.id, tag: el.tagName.toLowerCase(), name: el.getAttribute('name'),
          text: (el.innerText || '').trim().slice(0, 60), href: el.getAttribute('href'),
          visible: outlined || style.boxShadow !== 'none'};
}"""


def focused(page) -> dict[str, Any]:
    """The focused element, and whether it shows a focus style (an outline or a ring)."""
    here = page.evaluate(FOCUSED)
    assert here["visible"], f"no visible focus on {here}"
    return here


def tab_to(page, selector: str, limit: int = 150) -> list[dict[str, Any]]:
    """Tab (only) until `selector` has the focus; every element on the way shows its focus. The path taken."""
    path = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        path.append(focused(page))
        if page.evaluate("s => document.activeElement.matches(s)", selector):
            return path
    raise AssertionError(f"Tab never reached {selector}; it went through {[p['id'] or p['text'] for p in path]}")


def press_and_load(page, key: str = "Enter") -> None:
    """Press a key that follows a link or submits a form, and wait for the next page."""
    with page.expect_navigation():
        page.keyboard.press(key)


def choose(page, text: str) -> None:
    """Choose an option of the focused select by typing its first words, as a keyboard user does."""
    page.keyboard.type(text)
    chosen = page.evaluate("() => document.activeElement.selectedOptions[0].textContent")
    assert chosen.startswith(text), f"typing {text!r} chose {chosen!r}"


def test_a_coordinator_accepts_an_offer_logs_a_contact_and_closes_a_case_with_the_keyboard_alone(page_url, browser):
    from playwright.sync_api import expect

    page = new_page(browser)
    case_id = demo_id(PROVIDER, 104, "case")

    # Sign in: the skip link comes first, and takes the focus to the main content.
    page.goto(f"{page_url}/signin")
    page.keyboard.press("Tab")
    assert focused(page)["text"] == "Skip to main content"
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "main"
    tab_to(page, "select[name=advocate_id]")
    choose(page, "Coordinator Sazu")
    assert tab_to(page, "button[type=submit]")[-1]["text"] == "Sign in"
    press_and_load(page)
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"^Caseload of "))

    # The header first (the service, then the main navigation in its order), then the page.
    path = tab_to(page, "a[href$='/offers']")
    assert [p["text"] for p in path] == ["Skip to main content", "Advocacy", "My caseload", "Upcoming transitions",
                                         "Find a case", "Inbox"]  # fmt: skip
    press_and_load(page)
    expect(page.get_by_role("heading", level=1)).to_have_text("Inbox")

    # Accept an offer choosing its advocate: the advocate's choice, then its Accept button, then the decline form.
    offer = f'li[data-offer-id="{OFFERS[0]}"]'
    tab_to(page, f"{offer} select[name=advocate_id]")
    choose(page, "Advocate Mizu Demo")
    page.keyboard.press("Tab")
    assert focused(page)["text"] == "Accept"
    page.keyboard.press("Tab")
    assert focused(page)["name"] == "reason"  # the decline form comes after
    page.keyboard.press("Shift+Tab")
    assert focused(page)["text"] == "Accept"
    press_and_load(page)
    expect(page.get_by_role("status")).to_have_text("Offer accepted.")
    expect(page.locator(offer)).to_have_count(0)

    # To the case from the caseload, by its link.
    tab_to(page, "nav a[href$='/caseload']")
    press_and_load(page)
    tab_to(page, f"a[href$='/cases/{case_id}']")
    press_and_load(page)
    expect(page.locator("#contact-at")).to_be_visible()

    # Log a contact: the form's fields in their visual order, a checkbox ticked with Space.
    tab_to(page, "#contact-at")
    at = datetime.now(UTC) - timedelta(hours=1)
    # Debian's Chromium shows date fields month first with a 12-hour clock whatever the page's language:
    # type the date, Tab to the time part of the same field, then the hours, minutes and AM/PM.
    page.keyboard.type(at.strftime("%m%d%Y"))
    page.keyboard.press("Tab")
    page.keyboard.type(at.strftime("%I%M") + at.strftime("%p")[0])
    assert page.locator("#contact-at").input_value() == at.strftime("%Y-%m-%dT%H:%M")
    tab_to(page, "#contact-method")
    choose(page, "Phone")
    page.keyboard.press("Tab")
    choose(page, "Reached")
    page.keyboard.press("Tab")
    assert focused(page)["id"] == "contact-interpreter"
    page.keyboard.press("Space")
    expect(page.locator("#contact-interpreter")).to_be_checked()
    page.keyboard.press("Tab")
    assert focused(page)["id"] == "contact-note"
    page.keyboard.type("Synthetic: called on the safe number.")
    page.keyboard.press("Tab")
    assert focused(page)["text"] == "Log contact"
    press_and_load(page)
    expect(page.get_by_role("status")).to_have_text("Contact logged.")
    expect(page.locator("#contacts tbody tr")).to_have_count(1 + 1)  # the demo seed's contact, and this one

    # Close the case: its outcome, a note, and the button pressed with Space.
    tab_to(page, "#closure-outcome")
    choose(page, "Moved on")
    page.keyboard.press("Tab")
    assert focused(page)["id"] == "closure-note"
    page.keyboard.press("Tab")
    assert focused(page)["text"] == "Close case"
    press_and_load(page, "Space")
    expect(page.get_by_role("status")).to_have_text("Case closed.")
    expect(page.locator("#closure-outcome")).to_have_count(0)
    assert page.locator("[tabindex]:not([tabindex='-1']):not([tabindex='0'])").count() == 0  # DOM order is the order
    page.context.close()
