"""The advocate's page as an advocate's day needs it (issue 13 items 1 and 5), in-process on PostgreSQL: the
offers inbox with its countdown and each advocate's load, the case page's person details and its NRM
reference, reconsideration and consent forms, search by name or reference through a POST over the blind
index, the caseload's filters and pages, and plain words for every code on every page."""

from __future__ import annotations

import json
import re
import threading
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sqlalchemy import select
from test_advocacy_continuity_page import (  # the same page fixture and sign-in
    PROVIDER,
    case_links,
    oidc_sign_in,
    page,  # noqa: F401 - the `page` fixture
)

from services.advocacy import domain
from services.advocacy.casework.intake_client import IntakeClient
from services.advocacy.casework.search import name_tokens
from services.advocacy.continuity.scheduler import ClockScheduler
from services.advocacy.demo_cases import CASE_NEWS, DEMO_CASES, demo_id
from services.advocacy.models import Case, CaseSearchToken, NrmRecord, Offer, Outbox
from services.advocacy.web.directory import Directory
from services.advocacy.web.page import DIRECTORY

SUMMARY = {
    "org_id": "met-police",
    "is_child": False,
    "pathway": "nrm",
    "region": "north_west",
    "languages": ["sq"],
    "interpreter_needed": True,
    "exploitation_types": ["domestic_servitude"],
    "needs": ["mental_health", "accommodation"],
}


def offered(app, offer_id: str, *, hours: float = 5.5, status: str = domain.OFFER_PENDING) -> None:
    now = datetime.now(UTC)
    with app.extensions["advocacy"].unit_of_work() as uow:
        uow.offers.add(
            Offer(id=offer_id, provider_id=PROVIDER, referral_id=f"r-{offer_id}", status=status, summary=SUMMARY,
                  offered_at=now, respond_by=now + timedelta(hours=hours), received_at=now, updated_at=now)
        )  # fmt: skip


def token_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html)[1]


def subject_of(app, case_id: str) -> dict:
    with app.extensions["advocacy"].sessions.begin() as session:
        return dict(session.get(Case, case_id).referral)


class Text(HTMLParser):
    """The text a person reads (not attributes, not the style sheet)."""

    def __init__(self):
        super().__init__()
        self.parts: list[str] = []

    def handle_data(self, data):
        self.parts.append(data)


def text_of(html: str) -> str:
    parser = Text()
    parser.feed(html)
    return " ".join(parser.parts)


def test_the_inbox_shows_the_summary_a_countdown_and_each_advocates_load_and_answers_offers(page):  # noqa: F811
    app, idp = page
    offered(app, "o-accept")
    offered(app, "o-decline", hours=30)
    offered(app, "o-gone", status="expired")
    lead, _ = oidc_sign_in(app, idp, "sa@p.example")
    html = lead.get("/offers").get_data(as_text=True)
    assert "answer within 5 hours" in html and "answer within 29 hours" in html
    assert "North West" in html and "domestic servitude" in html and "mental health" in html
    assert "interpreter needed" in html
    with app.extensions["advocacy"].sessions.begin() as session:
        kalo_id = session.scalars(select(Case.advocate_id).where(Case.id == demo_id(PROVIDER, 101, "case"))).one()
    assert re.search(r"Advocate Kalo: 2 of 9 cases, speaks sq", html)  # the demo seed gave Kalo two cases
    token = token_of(html)
    accept = {"advocate_id": kalo_id, "csrf_token": token}
    assert lead.post("/offers/o-accept/accept", data={"advocate_id": kalo_id}).status_code == 400  # no CSRF
    done = lead.post("/offers/o-accept/accept", data=accept, follow_redirects=True).get_data(as_text=True)
    assert "Offer accepted." in done and "Advocate Kalo: 3 of 9 cases" in done
    declined = lead.post("/offers/o-decline/decline", data={"reason": "complex_needs", "csrf_token": token},
                         follow_redirects=True).get_data(as_text=True)  # fmt: skip
    assert "Offer declined." in declined
    bad = lead.post("/offers/o-gone/decline", data={"reason": "not_a_code", "csrf_token": token},
                    follow_redirects=True).get_data(as_text=True)  # fmt: skip
    assert "Choose a reason" in bad
    answered = re.search(r'<table class="table" id="answered">.*?</table>', declined, re.S)[0]
    assert "Declined: Needs we cannot meet" in answered and "Expired" in answered and "Accepted" in answered
    assert 'data-offer-id="o-accept"' not in declined.split('id="answered"')[0]  # no longer waiting
    with app.extensions["advocacy"].sessions.begin() as session:
        case = session.scalars(select(Case).where(Case.offer_id == "o-accept")).one()
        sent = [row.type for row in session.scalars(select(Outbox))]
    assert case.advocate_id == kalo_id and {"offer.accepted", "offer.declined"} <= set(sent)
    kalo, _ = oidc_sign_in(app, idp, "kalo@p.example")
    assert kalo.get("/offers").status_code == 403  # an advocate does not allocate


def test_the_case_page_shows_the_person_and_records_the_nrm_reference_a_reconsideration_and_consent(page):  # noqa: F811
    app, idp = page
    mizu, _ = oidc_sign_in(app, idp, "mizu@p.example")
    case_id = demo_id(PROVIDER, 103, "case")  # a positive RG 50 days ago
    html = mizu.get(f"/cases/{case_id}").get_data(as_text=True)
    person = re.search(r'<dl class="summary" id="person">.*?</dl>', html, re.S)[0]
    assert "<dd>sq, en</dd>" in person and "<dd>Needed</dd>" in person and "Through the referrer" in person
    assert "Do not leave a message" in person and re.search(r"<dt>Age</dt><dd>\d+</dd>", person)
    token = token_of(html)
    url = f"/cases/{case_id}"
    assert mizu.post(f"{url}/nrm-reference", data={"nrm_reference": "NRM-1"}).status_code == 400  # no CSRF
    saved = mizu.post(f"{url}/nrm-reference", data={"nrm_reference": " NRM-2026-0042 ", "csrf_token": token},
                      follow_redirects=True).get_data(as_text=True)  # fmt: skip
    assert "NRM reference saved." in saved and "<dd>NRM-2026-0042</dd>" in saved
    long = mizu.post(f"{url}/nrm-reference", data={"nrm_reference": "N" * 65, "csrf_token": token},
                     follow_redirects=True).get_data(as_text=True)  # fmt: skip
    assert "at most 64 characters" in long
    chooser = r'<select id="decision_id" name="decision_id" required>\s*<option value="([^"]+)"'
    decision_id = re.search(chooser, saved)[1]
    today = datetime.now(UTC).date().isoformat()
    form = {"decision_id": decision_id, "requested_on": today, "csrf_token": token}
    asked = mizu.post(f"{url}/reconsiderations", data=form, follow_redirects=True).get_data(as_text=True)
    assert "Reconsideration request recorded." in asked and 'id="reconsiderations"' in asked
    wrong = mizu.post(f"{url}/reconsiderations", data={**form, "decision_id": "not-this-cases"},
                      follow_redirects=True).get_data(as_text=True)  # fmt: skip
    assert "is not a decision of case" in wrong
    undated = mizu.post(f"{url}/reconsiderations", data={**form, "requested_on": "yesterday"}, follow_redirects=True)
    assert "Choose the decision to reconsider" in undated.get_data(as_text=True)
    consent = {"purpose": "data_sharing", "given": "yes", "obtained_at": f"{today}T00:01", "interpreter_used": "yes",
               "recipients": "gp-surgery-1, council-7", "csrf_token": token}  # fmt: skip
    recorded = mizu.post(f"{url}/consent", data=consent, follow_redirects=True).get_data(as_text=True)
    assert "Consent recorded." in recorded and "Sharing information: given" in recorded
    assert "may be shared with gp-surgery-1, council-7" in recorded and "with an interpreter" in recorded
    for bad in ({"purpose": "everything"}, {"given": "maybe"}, {"obtained_at": "soon"}):
        refused = mizu.post(f"{url}/consent", data={**consent, **bad}, follow_redirects=True)
        assert "Choose what the consent is for" in refused.get_data(as_text=True)
    future = mizu.post(f"{url}/consent", data={**consent, "obtained_at": "2999-01-01T10:00"}, follow_redirects=True)
    assert "obtained_at is in the future" in future.get_data(as_text=True)
    with app.extensions["advocacy"].sessions.begin() as session:
        assert session.get(NrmRecord, case_id).nrm_reference == "NRM-2026-0042"
        sent = [row.type for row in session.scalars(select(Outbox))]
    assert "case.consent_recorded" in sent
    kalo, _ = oidc_sign_in(app, idp, "kalo@p.example")
    assert kalo.post(f"{url}/nrm-reference", data={"nrm_reference": "X", "csrf_token": token}).status_code in (
        400,  # another session's token
        404,
    )


def test_search_by_name_or_reference_is_a_post_over_the_blind_index_and_finds_only_visible_cases(page):  # noqa: F811
    app, idp = page
    kalo, _ = oidc_sign_in(app, idp, "kalo@p.example")
    mine, theirs = demo_id(PROVIDER, 101, "case"), demo_id(PROVIDER, 103, "case")
    referral = subject_of(app, mine)
    given, family = referral["subject"]["given_name"], referral["subject"]["family_name"]
    html = kalo.get("/search").get_data(as_text=True)
    token = token_of(html)
    # A name in a URL is ignored: the form only, no results, the name nowhere.
    leaked = kalo.get(f"/search?q={given}").get_data(as_text=True)
    assert 'id="results"' not in leaked and "No case matches" not in leaked
    assert kalo.post("/search", data={"q": given}).status_code == 400  # no CSRF
    found = kalo.post("/search", data={"q": f"  {given.upper()}  {family.lower()} ", "csrf_token": token})
    assert found.status_code == 200 and f'href="/cases/{mine}"' in found.get_data(as_text=True)
    assert found.headers.get("Location") is None and found.request.path == "/search"  # rendered, not redirected
    accented = "".join(ch + "\u0301" if ch in "aeiou" else ch for ch in given)  # combining acute accents
    assert f'href="/cases/{mine}"' in kalo.post("/search", data={"q": accented, "csrf_token": token}).get_data(
        as_text=True
    )
    by_reference = kalo.post("/search", data={"q": referral["external_reference"], "csrf_token": token})
    assert f'href="/cases/{mine}"' in by_reference.get_data(as_text=True)
    partial = kalo.post("/search", data={"q": referral["external_reference"][:-2], "csrf_token": token})
    assert "No case matches." in partial.get_data(as_text=True)  # a reference matches exactly
    # Another advocate's case is not found; the coordinator finds it.
    other = subject_of(app, theirs)["subject"]["family_name"]
    assert f'href="/cases/{theirs}"' not in kalo.post("/search", data={"q": other, "csrf_token": token}).get_data(
        as_text=True
    )
    lead, _ = oidc_sign_in(app, idp, "sa@p.example")
    lead_token = token_of(lead.get("/search").get_data(as_text=True))
    assert f'href="/cases/{theirs}"' in lead.post("/search", data={"q": other, "csrf_token": lead_token}).get_data(
        as_text=True
    )
    assert kalo.post("/search", data={"q": "", "csrf_token": token}).status_code == 400
    assert kalo.post("/search", data={"q": "x" * 201, "csrf_token": token}).status_code == 400
    # The NRM reference, once recorded, finds the case exactly.
    case_html = kalo.get(f"/cases/{mine}").get_data(as_text=True)
    kalo.post(f"/cases/{mine}/nrm-reference", data={"nrm_reference": "NRM-77", "csrf_token": token_of(case_html)})
    assert f'href="/cases/{mine}"' in kalo.post("/search", data={"q": "NRM-77", "csrf_token": token}).get_data(
        as_text=True
    )
    # The index holds digests only: no name, no reference, in any case.
    with app.extensions["advocacy"].sessions.begin() as session:
        rows = list(session.scalars(select(CaseSearchToken)))
    held = " ".join(f"{r.case_id} {r.digest} {r.provider_id}" for r in rows).casefold()
    assert rows and all(re.fullmatch(r"[0-9a-f]{64}", r.digest) for r in rows)
    for word in [*name_tokens(f"{given} {family}"), referral["external_reference"].casefold()]:
        assert word not in held.replace(PROVIDER, "")


def test_the_caseload_filters_by_advocate_and_next_deadline_and_refuses_bad_parameters(page):  # noqa: F811
    app, idp = page
    lead, _ = oidc_sign_in(app, idp, "sa@p.example")
    assert len(case_links(lead)) == 4
    with app.extensions["advocacy"].sessions.begin() as session:
        kalo_id = session.scalars(select(Case.advocate_id).where(Case.id == demo_id(PROVIDER, 101, "case"))).one()
    mine = re.findall(r'data-case-id="([^"]+)"', lead.get(f"/caseload?advocate={kalo_id}").get_data(as_text=True))
    assert set(mine) == {demo_id(PROVIDER, 101, "case"), demo_id(PROVIDER, 102, "case")}
    soon = lead.get("/caseload?within=7").get_data(as_text=True)
    assert f'data-case-id="{demo_id(PROVIDER, 101, "case")}"' in soon  # overdue counts as within
    assert "selected>Within 7 days, overdue included" in soon
    for bad in ("within=0", "within=abc", "page=0", "page=-1", "advocate=" + "x" * 40):
        response = lead.get(f"/caseload?{bad}")
        assert response.status_code == 400 and bad.split("=")[0] in response.get_data(as_text=True)
    assert lead.get("/caseload?page=2").status_code == 200


def test_no_page_shows_a_raw_key_or_a_policy_version(page):  # noqa: F811
    app, idp = page
    offered(app, "o-words")
    lead, _ = oidc_sign_in(app, idp, "sa@p.example")
    pages = ["/caseload", "/offers", "/search", *(f"/cases/{case_id}" for case_id in case_links(lead))]
    raw = re.compile(r"\b[a-z0-9]+_[a-z0-9_]+\b")
    for url in pages:
        text = text_of(lead.get(url).get_data(as_text=True))
        assert "@*:" not in text and not raw.findall(text), (url, raw.findall(text))
    case = lead.get(f"/cases/{demo_id(PROVIDER, 101, 'case')}").get_data(as_text=True)
    assert "rule from " in case and "Deadline started" in case


class StandInIntake:
    """intake's directories over HTTP, as a charity's service token reads them."""

    def __init__(self):
        directories = {
            "/v1/directory/providers": [{"id": PROVIDER, "name": "Charity P"},
                                        {"id": "charity-q", "name": "Charity Q"}],
            "/v1/directory/agencies": [{"org_id": "cardiff-cs", "name": "Cardiff Children's Services",
                                        "kind": "childrens_services"}],
        }  # fmt: skip

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                rows = directories.get(self.path)
                ok = rows is not None and self.headers.get("Authorization") == "Bearer service-token"
                self.send_response(200 if ok else 404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps(rows if ok else {}).encode())

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


class Tokens:
    def get(self) -> str:
        return "service-token"


def test_the_plan_form_chooses_the_receiving_agency_and_provider_from_intakes_directories(page):  # noqa: F811
    app, idp = page
    intake = StandInIntake()
    app.extensions[DIRECTORY] = Directory(IntakeClient(intake.url, Tokens()).directory)
    try:
        mizu, _ = oidc_sign_in(app, idp, "mizu@p.example")
        case_id = demo_id(PROVIDER, 104, "case")
        html = mizu.get(f"/cases/{case_id}").get_data(as_text=True)
        assert '<option value="cardiff-cs">Cardiff Children&#39;s Services</option>' in html
        assert '<option value="charity-q">Charity Q</option>' in html and f'<option value="{PROVIDER}">' not in html
        form = {"kind": "relocation", "planned_for": "2027-02-01", "receiving_agency": "cardiff-cs",
                "new_region": "wales", "csrf_token": token_of(html)}  # fmt: skip
        planned = mizu.post(f"/cases/{case_id}/transitions", data=form, follow_redirects=True)
        assert "Receiving: Cardiff Children&#39;s Services" in planned.get_data(as_text=True)
    finally:
        intake.server.shutdown()
        intake.server.server_close()  # refused from now on
    # intake unreachable: the form asks for typed ids, and says why.
    app.extensions[DIRECTORY] = Directory(IntakeClient(intake.url, Tokens()).directory)
    fallback = mizu.get(f"/cases/{case_id}").get_data(as_text=True)
    assert '<input type="text" id="receiving_agency"' in fallback and "could not be reached" in fallback
    assert '<input type="text" id="receiving_provider_id"' in fallback


def test_the_case_page_logs_contacts_adds_notes_and_raises_risk_flags_and_the_caseload_filters_by_risk(page):  # noqa: F811
    app, idp = page
    kalo, _ = oidc_sign_in(app, idp, "kalo@p.example")
    case_id = demo_id(PROVIDER, 101, "case")
    url = f"/cases/{case_id}"
    token = token_of(kalo.get(url).get_data(as_text=True))
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    contact = {"at": now.strftime("%Y-%m-%dT%H:%M"), "method": "phone", "outcome": "no_answer", "csrf_token": token}
    assert kalo.post(f"{url}/contacts", data={**contact, "csrf_token": ""}).status_code == 400
    for outcome, method in (("no_answer", "phone"), ("message_left", "text"), ("reached", "in_person")):
        done = kalo.post(f"{url}/contacts", data={**contact, "method": method, "outcome": outcome},
                         follow_redirects=True)  # fmt: skip
        assert "Contact logged." in done.get_data(as_text=True)
    for bad in ({"method": "pigeon"}, {"outcome": "maybe"}, {"at": "later"}):
        assert "Say when, how" in kalo.post(f"{url}/contacts", data={**contact, **bad}, follow_redirects=True).get_data(
            as_text=True
        )
    future = (now + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    assert "at is in the future" in kalo.post(f"{url}/contacts", data={**contact, "at": future},
                                              follow_redirects=True).get_data(as_text=True)  # fmt: skip
    note = "Synthetic note: prefers afternoon calls."
    noted = kalo.post(f"{url}/notes", data={"text": note, "csrf_token": token}, follow_redirects=True)
    html = noted.get_data(as_text=True)
    assert "Note added." in html and note in html
    timeline = re.search(r'<ol class="timeline" id="timeline">.*?</ol>', html, re.S)[0]
    assert "Note added" in timeline and note not in timeline and "Contact logged" in timeline
    assert "Write the note" in kalo.post(f"{url}/notes", data={"text": "  ", "csrf_token": token},
                                         follow_redirects=True).get_data(as_text=True)  # fmt: skip
    review = (now.date() + timedelta(days=7)).isoformat()
    risk = {
        "kind": "exploiters_nearby",
        "level": "high",
        "review_on": review,
        "note": "Synthetic.",
        "csrf_token": token,
    }
    raised = kalo.post(f"{url}/risks", data=risk, follow_redirects=True).get_data(as_text=True)
    assert "Risk flag raised." in raised and "Exploiters nearby" in raised
    contacts = re.search(r'<table class="table" id="contacts">.*?</table>', raised, re.S)[0]
    assert contacts.count("<tr>") == 1 + 3 + 3  # the header, the demo seed's three, these three
    assert "Message left" in contacts and "In person" in contacts
    for bad in ({"kind": "ghosts"}, {"level": "extreme"}, {"review_on": ""}):
        refused = kalo.post(f"{url}/risks", data={**risk, **bad}, follow_redirects=True)
        assert "Choose the kind of risk" in refused.get_data(as_text=True)
    past = kalo.post(f"{url}/risks", data={**risk, "review_on": "2020-01-01"}, follow_redirects=True)
    assert "review_on is in the past" in past.get_data(as_text=True)
    with app.extensions["advocacy"].sessions.begin() as session:
        sent = [(row.type, row.payload) for row in session.scalars(select(Outbox))]
    raised_events = [payload for kind, payload in sent if kind == "case.risk_raised"]
    assert len(raised_events) == 1 and "Synthetic" not in json.dumps(raised_events)
    high = re.findall(r'data-case-id="([^"]+)"', kalo.get("/caseload?risk=high").get_data(as_text=True))
    assert high == [case_id]
    assert "No live cases match" in kalo.get("/caseload?risk=low").get_data(as_text=True)
    assert kalo.get("/caseload?risk=severe").status_code == 400


def test_a_childs_case_page_says_which_local_authority_is_informed(page):  # noqa: F811
    app, idp = page
    case_id = demo_id(PROVIDER, 102, "case")  # the child
    with app.extensions["advocacy"].sessions.begin() as session:
        case = session.get(Case, case_id)
        case.local_authority_org_id, case.local_authority_name = "cardiff-cs", "Cardiff Children's Services"
    lead, _ = oidc_sign_in(app, idp, "sa@p.example")
    html = lead.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "<dt>Local authority informed</dt><dd>Cardiff Children&#39;s Services</dd>" in html
    assert "Local authority informed" not in lead.get(f"/cases/{demo_id(PROVIDER, 101, 'case')}").get_data(as_text=True)


def test_the_demo_cases_announce_nothing_and_one_needs_attention_for_lost_contact(page):  # noqa: F811
    """`make run`'s demo cases have no referral at intake: seeding stages no event an agency would be told, and
    the scheduler finds no lapsed contact to announce (notifications would park it, unknown). The case last
    reached 20 days ago is shown as a real lapsed one would be; the others were reached within the rule."""
    app, idp = page
    advocacy = app.extensions["advocacy"]
    demo_referrals = {demo_id("referral", seed, "referral") for seed, *_ in DEMO_CASES}
    with advocacy.sessions.begin() as session:
        staged = session.scalars(select(Outbox).where(Outbox.type.in_(CASE_NEWS))).all()
        assert not [row.type for row in staged if any(r in json.dumps(row.payload) for r in demo_referrals)]
    scheduler = ClockScheduler(advocacy.unit_of_work, PROVIDER, advocacy.continuity.wall_clock,
                               contacts=advocacy.continuity.contacts)  # fmt: skip
    assert scheduler.tick().total == 0

    lead, _ = oidc_sign_in(app, idp, "sa@p.example")
    caseload = lead.get("/caseload").get_data(as_text=True)
    attention = caseload.split('id="needs-attention"', 1)[1].split("</ul>", 1)[0]
    assert f'data-case-id="{demo_id(PROVIDER, 101, "case")}"' in attention and "No contact" in attention
    for seed in (102, 103, 104):
        assert demo_id(PROVIDER, seed, "case") not in attention
    html = lead.get(f"/cases/{demo_id(PROVIDER, 101, 'case')}").get_data(as_text=True)
    log = html.split('id="contacts"', 1)[1].split("</table>", 1)[0]
    assert log.count("<td>Reached</td>") == 2 and log.count("<td>No answer</td>") == 1  # the seed's contacts
