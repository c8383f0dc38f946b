"""The advocate's page in-process on PostgreSQL: OpenID Connect sign-in against a stand-in identity
provider, who sees which case, and CSRF on every form."""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest

from services.advocacy.app import create_app
from services.advocacy.continuity.wall_clock import today
from services.advocacy.demo_cases import demo_id, ensure_cases
from services.advocacy.models import Advocate
from services.migrate import migrate
from shared.config import Settings
from shared.crypto import ensure_kek_file

PROVIDER = "charity-p"
CLIENT_ID = "advocacy-page"
SEARCH_KEY = "search-index-key-of-the-page-tests-0123456789"


class StandInIdp:
    """The identity provider's token endpoint: answers one authorization code with a signed ID token."""

    def __init__(self, private_pem: str):
        self.private_pem, self.claims, self.codes = private_pem, {}, {}
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
                claims = idp.codes.get(form["code"][0])
                body = json.dumps(
                    {"id_token": jwt.encode(claims, idp.private_pem, algorithm="RS256")} if claims else {}
                )
                self.send_response(200 if claims else 400)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def page(fresh_database, dev_keys, tmp_path):
    idp = StandInIdp(dev_keys[0].read_text())
    ensure_kek_file(kek := tmp_path / "kek.b64")
    url = fresh_database("advocacy_page")
    migrate("advocacy", url)
    env = {
        "ADVOCACY_DATABASE_URL": url,
        "PROVIDER_ID": PROVIDER,
        "AUTH_PUBLIC_KEY_FILE": str(dev_keys[1]),
        "AUTH_AUTHORIZE_URL": "https://idp.example/authorize",
        "AUTH_TOKEN_URL": idp.url,
        "AUTH_CLIENT_ID": CLIENT_ID,
        "AUTH_CLIENT_SECRET": "not-a-real-secret",
        "ADVOCACY_PUBLIC_URL": "https://advocacy.charity-p.example",
        # Production-shaped (a real identity provider's token URL): the blind index's key is required.
        "SEARCH_INDEX_KEY": SEARCH_KEY,
        "DATA_KEK_FILE": str(kek),  # and so is the key-encryption key (shared.crypto)
    }
    app = create_app(Settings.from_env("advocacy", env=env))
    advocacy = app.extensions["advocacy"]
    continuity = advocacy.continuity
    with advocacy.unit_of_work() as uow:
        casework = continuity.casework
        kalo = casework.create_advocate(uow, name="Advocate Kalo", email="kalo@p.example", languages=["sq"],
                                        max_caseload=9)  # fmt: skip
        mizu = casework.create_advocate(uow, name="Advocate Mizu", email="mizu@p.example", languages=["ro"],
                                        max_caseload=9)  # fmt: skip
        lead = casework.create_advocate(uow, name="Coordinator Sa", email="sa@p.example", languages=["en"],
                                        max_caseload=9)  # fmt: skip
        lead.role = "coordinator"
        ensure_cases(uow, continuity, [kalo, mizu], today(continuity.wall_clock))
    yield app, idp
    idp.server.shutdown()
    app.extensions["advocacy"].engine.dispose()


def oidc_sign_in(app, idp: StandInIdp, email: str, *, org: str = PROVIDER, nonce: str | None = None):
    client = app.test_client()
    start = client.get("/signin/oidc")
    assert start.status_code == 302
    query = parse_qs(urlsplit(start.headers["Location"]).query)
    assert query["redirect_uri"] == ["https://advocacy.charity-p.example/signin/callback"]
    now = int(time.time())
    idp.codes["code-1"] = {"iss": "referrals-dev", "aud": CLIENT_ID, "sub": email, "exp": now + 300, "iat": now,
                           "org": org, "org_kind": "provider", "email": email,
                           "nonce": nonce or query["nonce"][0]}  # fmt: skip
    return client, client.get(f"/signin/callback?code=code-1&state={query['state'][0]}")


def case_links(client) -> list[str]:
    links = re.findall(r'href="/cases/([0-9a-f-]{36})"', client.get("/caseload").get_data(as_text=True))
    return list(dict.fromkeys(links))  # a case with an upcoming transition is linked twice


def test_oidc_sign_in_verifies_the_id_token_and_finds_the_advocate_by_email(page):
    app, idp = page
    client, callback = oidc_sign_in(app, idp, "kalo@p.example")
    assert callback.status_code == 302 and callback.headers["Location"].endswith("/caseload")
    assert "Advocate Kalo" in client.get("/caseload").get_data(as_text=True)
    assert "Secure" in callback.headers["Set-Cookie"]  # dev sign-in is off: the cookie is Secure


@pytest.mark.parametrize(
    ("email", "org", "nonce", "status"),
    [
        ("kalo@p.example", "charity-other", None, 403),  # another provider's person
        ("nobody@p.example", PROVIDER, None, 403),  # not an advocate here
        ("kalo@p.example", PROVIDER, "replayed-nonce", 401),
    ],
)
def test_oidc_sign_in_refuses_strangers_and_replays(page, email, org, nonce, status):
    app, idp = page
    _, callback = oidc_sign_in(app, idp, email, org=org, nonce=nonce)
    assert callback.status_code == status


def test_a_callback_without_the_state_it_started_with_is_refused(page):
    app, _ = page
    assert app.test_client().get("/signin/callback?code=x&state=forged").status_code == 400


def test_dev_sign_in_is_off_unless_configured(page):
    app, _ = page
    assert app.test_client().post("/signin/dev", data={"advocate_id": "x"}).status_code in (400, 404)
    assert "Development sign-in" not in app.test_client().get("/signin").get_data(as_text=True)


def test_an_advocate_sees_their_own_cases_a_coordinator_sees_all_and_another_advocates_case_is_not_found(page):
    app, idp = page
    kalo, _ = oidc_sign_in(app, idp, "kalo@p.example")
    mizu, _ = oidc_sign_in(app, idp, "mizu@p.example")
    lead, _ = oidc_sign_in(app, idp, "sa@p.example")
    mine, theirs = case_links(kalo), case_links(mizu)
    assert len(mine) == 2 and len(theirs) == 2 and not set(mine) & set(theirs)
    assert set(case_links(lead)) == set(mine) | set(theirs)
    assert kalo.get(f"/cases/{theirs[0]}").status_code == 404
    assert lead.get(f"/cases/{theirs[0]}").status_code == 200


def test_every_form_needs_the_sessions_csrf_token(page):
    app, idp = page
    kalo, _ = oidc_sign_in(app, idp, "kalo@p.example")
    case_id = case_links(kalo)[0]
    form = {"stage": "cg", "outcome": "positive", "decided_on": "2026-01-01"}
    assert kalo.post(f"/cases/{case_id}/decisions", data=form).status_code == 400
    assert kalo.post(f"/cases/{case_id}/decisions", data={**form, "csrf_token": "forged"}).status_code == 400
    token = re.search(r'name="csrf_token" value="([^"]+)"', kalo.get(f"/cases/{case_id}").get_data(as_text=True))[1]
    assert kalo.post(f"/cases/{case_id}/decisions", data={**form, "csrf_token": token}).status_code == 302
    with app.extensions["advocacy"].sessions.begin() as session:
        assert session.query(Advocate).count() == 3


def test_the_case_page_closes_a_case_with_the_sessions_csrf_token_and_then_offers_no_forms(page):
    app, idp = page
    kalo, _ = oidc_sign_in(app, idp, "kalo@p.example")
    case_id = case_links(kalo)[0]
    html = kalo.get(f"/cases/{case_id}").get_data(as_text=True)
    assert 'action="/cases/' + case_id + '/closure"' in html and 'value="declined_adult_support_at_18"' in html
    form = {"outcome": "moved_on", "note": "Synthetic note: settled in Leeds."}
    assert kalo.post(f"/cases/{case_id}/closure", data=form).status_code == 400  # no CSRF token
    token = re.search(r'name="csrf_token" value="([^"]+)"', html)[1]
    assert kalo.post(f"/cases/{case_id}/closure", data={**form, "csrf_token": token}).status_code == 302
    closed = kalo.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "Case closed." in closed and "settled in Leeds" in closed
    assert "/closure" not in closed and "/decisions" not in closed
    again = kalo.post(f"/cases/{case_id}/closure", data={**form, "csrf_token": token}, follow_redirects=True)
    assert "is closed, not open" in again.get_data(as_text=True)


def test_the_page_says_minimums_in_plain_words_and_only_a_missed_deadline_is_overdue(page):
    app, idp = page
    kalo, _ = oidc_sign_in(app, idp, "kalo@p.example")
    mizu, _ = oidc_sign_in(app, idp, "mizu@p.example")
    # Demo case 103: a positive RG 50 days ago. The recovery period and the earliest CG date are minimums.
    reached = mizu.get(f"/cases/{demo_id(PROVIDER, 103, 'case')}").get_data(as_text=True)
    assert "Minimum recovery period: reached" in reached and "Earliest CG decision: from " in reached
    assert "Overdue" not in reached and "Overdue" not in mizu.get("/caseload").get_data(as_text=True)
    # Demo case 101: no RG decision, expected 43 days ago: a deadline missed, first on the caseload.
    caseload = kalo.get("/caseload").get_data(as_text=True)
    assert case_links(kalo)[0] == demo_id(PROVIDER, 101, "case") and caseload.count("Overdue") == 1
    missed = kalo.get(f"/cases/{demo_id(PROVIDER, 101, 'case')}").get_data(as_text=True)
    assert "Reasonable-grounds decision expected: by " in missed and "Overdue" in missed


def test_the_case_page_completes_turning_18_with_the_young_persons_decision(page):
    app, idp = page
    lead, _ = oidc_sign_in(app, idp, "sa@p.example")  # the coordinator sees every case
    case_id = demo_id(PROVIDER, 102, "case")  # 17 years 10 months: turning 18 is planned
    html = lead.get(f"/cases/{case_id}").get_data(as_text=True)
    assert 'value="consent_given"' in html and 'value="consent_refused"' in html
    advocacy = app.extensions["advocacy"]
    with advocacy.unit_of_work() as uow:
        [turning_18] = [t.id for t in uow.transitions.of_case(case_id) if t.kind == "turning_18"]
    token = re.search(r'name="csrf_token" value="([^"]+)"', html)[1]
    form = {"decision": "consent_refused", "csrf_token": token}
    assert lead.post(f"/cases/{case_id}/transitions/{turning_18}/completion", data=form).status_code == 302
    with advocacy.unit_of_work() as uow:
        case = uow.cases.get(case_id)
        transition = uow.transitions.get(case_id, turning_18)
        assert (case.status, transition.status, transition.decision) == ("closed", "completed", "consent_refused")
