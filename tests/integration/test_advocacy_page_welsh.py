"""The advocate's page in English and Welsh (issue 13 item 7), in-process on PostgreSQL: every page renders in
Welsh with no English message of the catalogue left in its visible text, `<html lang>` follows the language,
`?lang=` is remembered across requests (and across sign-in), Accept-Language chooses the first, dates use
Welsh month names; and the catalogue is complete, translated and compiled (.mo as the .po)."""

from __future__ import annotations

import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

from babel.messages.pofile import read_po
from test_advocacy_continuity_page import PROVIDER, case_links, oidc_sign_in
from test_advocacy_continuity_page import page as page  # noqa: F401 - the `page` fixture
from test_advocacy_page_day import offered, token_of

from services.advocacy.demo_cases import demo_id

ROOT = Path(__file__).resolve().parents[2]
PO = ROOT / "services/advocacy/web/translations/cy/LC_MESSAGES/messages.po"
# Messages Welsh writes as English does: none yet (names and numbers are not messages). Add one only with a reason.
SAME_IN_WELSH: set[str] = set()
# The fixture's people and advocates: names, not words to translate.
NAMES = ("Advocate Kalo", "Advocate Mizu", "Coordinator Sa")
WELSH_MONTHS = ("Ion", "Chwef", "Maw", "Ebr", "Mai", "Meh", "Gorff", "Awst", "Medi", "Hyd", "Tach", "Rhag")


def catalogue():
    with PO.open("rb") as f:
        return read_po(f, locale="cy")


class VisibleText(HTMLParser):
    """Text nodes a person reads, leaving out any element marked as another language (lang="en": the English
    the records store as text, such as a timeline detail) and the footer's link to the other language."""

    VOID = {"br", "input", "meta", "link", "img", "hr"}

    def __init__(self):
        super().__init__()
        self.stack: list[bool] = []  # per open element: inside another language?
        self.nodes: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in self.VOID:
            return
        other = dict(attrs).get("lang") not in (None, "cy") and tag != "html"
        self.stack.append(other or (bool(self.stack) and self.stack[-1]))

    def handle_endtag(self, tag):
        if tag not in self.VOID and self.stack:
            self.stack.pop()

    def handle_data(self, data):
        if data.strip() and not (self.stack and self.stack[-1]):
            self.nodes.append(" ".join(data.split()))


def visible(html: str) -> list[str]:
    parser = VisibleText()
    parser.feed(html)
    text = parser.nodes
    for name in NAMES:
        text = [node.replace(name, "") for node in text]
    return text


def english_left(html: str) -> set[str]:
    """English messages of the catalogue found as words in the page's visible text."""
    nodes = visible(html)
    found = set()
    for message in catalogue():
        if not message.id or message.pluralizable:
            continue
        for piece in re.split(r"%\([a-z]+\)[sd]", message.id):
            piece = piece.strip(" ,.:;()")
            if len(piece) < 3 or piece in SAME_IN_WELSH:
                continue
            words = re.compile(rf"(?<![\w’'/]){re.escape(piece)}(?![\w’'/])")  # Europe/London is a zone
            if any(words.search(node) for node in nodes):
                found.add(piece)
    return found


def html_lang(html: str) -> str:
    return re.search(r'<html lang="([^"]+)"', html)[1]


def test_every_page_renders_in_welsh_with_no_english_message_left_and_english_comes_back(page):  # noqa: F811
    app, idp = page
    offered(app, "o-cy")
    anonymous = app.test_client()
    signin = anonymous.get("/signin?lang=cy").get_data(as_text=True)
    assert html_lang(signin) == "cy" and "Mewngofnodi" in signin and not english_left(signin)
    lead, _ = oidc_sign_in(app, idp, "sa@p.example")
    caseload = lead.get("/caseload?lang=cy").get_data(as_text=True)
    assert html_lang(caseload) == "cy" and "Llwyth achosion" in caseload and "Allgofnodi" in caseload
    cases = case_links(lead)
    pages = ["/caseload", "/offers", "/search", *(f"/cases/{case_id}" for case_id in cases)]
    for url in pages:  # remembered: no ?lang= from here on
        html = lead.get(url).get_data(as_text=True)
        assert html_lang(html) == "cy", url
        assert not english_left(html), (url, english_left(html))
    results = lead.post("/search", data={"q": "zz-nobody", "csrf_token": token_of(caseload)}).get_data(as_text=True)
    assert "Nid oes achos yn cyfateb." in results and not english_left(results)
    done = lead.post(f"/cases/{cases[0]}/notes", data={"text": "Synthetic note.", "csrf_token": token_of(caseload)},
                     follow_redirects=True).get_data(as_text=True)  # fmt: skip
    assert "Ychwanegwyd y nodyn." in done  # a flash message too
    answer = {"advocate_id": "", "csrf_token": token_of(caseload)}
    assert "Derbyniwyd y cynnig." in lead.post("/offers/o-cy/accept", data=answer, follow_redirects=True).get_data(
        as_text=True
    )
    again = lead.post("/offers/o-cy/accept", data=answer, follow_redirects=True).get_data(as_text=True)
    assert "Nid oes modd ateb y cynnig hwn mwyach." in again and not english_left(again)  # a refused rule, in Welsh
    case = lead.get(f"/cases/{demo_id(PROVIDER, 103, 'case')}").get_data(as_text=True)
    assert any(f" {month} 20" in case for month in WELSH_MONTHS), "dates use Welsh month names"
    english = lead.get("/caseload?lang=en").get_data(as_text=True)
    assert html_lang(english) == "en-GB" and "My caseload" in english
    assert html_lang(lead.get("/offers").get_data(as_text=True)) == "en-GB"  # English remembered too


def test_accept_language_chooses_the_first_language_and_the_choice_outlives_sign_in(page):  # noqa: F811
    app, idp = page
    welsh_first = app.test_client().get("/signin", headers={"Accept-Language": "cy, en;q=0.5"})
    assert html_lang(welsh_first.get_data(as_text=True)) == "cy"
    english_first = app.test_client().get("/signin", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert html_lang(english_first.get_data(as_text=True)) == "en-GB"
    client = app.test_client()
    client.get("/signin?lang=cy", headers={"Accept-Language": "en-GB"})
    assert html_lang(client.get("/signin", headers={"Accept-Language": "en-GB"}).get_data(as_text=True)) == "cy"
    lead, _ = oidc_sign_in(app, idp, "sa@p.example")
    lead.get("/signin?lang=cy")
    lead.post("/signout", data={"csrf_token": token_of(lead.get("/caseload").get_data(as_text=True))})
    assert html_lang(lead.get("/signin").get_data(as_text=True)) == "cy"  # sign-out clears the session, not this


def test_every_message_has_a_welsh_translation_that_differs_from_the_english():
    untranslated, same = [], []
    for message in catalogue():
        if not message.id:
            continue
        strings = message.string if message.pluralizable else (message.string,)
        ids = message.id if message.pluralizable else (message.id,)
        if not all(strings):
            untranslated.append(message.id)
        elif any(s in ids for s in strings) and ids[0] not in SAME_IN_WELSH:
            same.append(message.id)
        placeholders = set(re.findall(r"%\([a-z]+\)[sd]", ids[0]))
        assert all(set(re.findall(r"%\([a-z]+\)[sd]", s)) == placeholders for s in strings), message.id
    assert not untranslated and not same, (untranslated, same)


def test_the_catalogue_holds_every_message_the_page_shows_and_the_mo_is_compiled_from_the_po():
    check = subprocess.run(
        [sys.executable, str(ROOT / "scripts/advocacy_messages.py"), "--check"], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
