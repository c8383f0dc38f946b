"""advocacy's event handlers on the real PostgreSQL: auto-accept, allocation (disclosure of the full
referral through a fake intake), withdrawal, and at-most-once effects through the inbox."""

from __future__ import annotations

import dataclasses
import json
import uuid
from dataclasses import dataclass

import pytest
import requests
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from services.advocacy.app import create_app
from services.advocacy.continuity import Continuity
from services.advocacy.handlers import subscriptions
from services.advocacy.models import Case, Inbox, Offer, Outbox
from shared.config import Settings
from shared.db import migrate
from shared.inbox import EventHandlers
from shared.messaging.envelope import Event
from shared.messaging.errors import PermanentError
from shared.testing import synthetic_person
from support.events import arriving, payload

PROVIDER = "charity-a"
OPEN = {"status": "open"}
SCOPES = "offers:respond cases:read cases:write"


class FakeIntake:
    """Stands in for intake's `GET /v1/referrals/{id}`: records each fetch, or fails like a down intake."""

    def __init__(self, *, fail: bool = False):
        self.fail = fail
        self.fetched: list[str] = []

    def fetch_referral(self, referral_id: str) -> dict:
        self.fetched.append(referral_id)
        if self.fail:
            raise requests.ConnectionError("intake is down")
        person = synthetic_person(seed=len(self.fetched))
        return {"id": referral_id, "status": "allocated", "subject": {"given_name": person["given_name"]}}


@pytest.fixture
def advocacy(fresh_database, dev_keys, broker_url, auth_header):
    url = fresh_database("advocacy")
    migrate("advocacy", url)
    env = {
        "ADVOCACY_DATABASE_URL": url,
        "PROVIDER_ID": PROVIDER,
        "AUTH_PUBLIC_KEY_FILE": str(dev_keys[1]),
        "AMQP_URL": broker_url,  # the API never publishes: no private vhost needed
    }
    app = create_app(Settings.from_env("advocacy", env=env))
    extension = app.extensions["advocacy"]
    headers = auth_header(PROVIDER, "provider", SCOPES)
    yield Instance(app.test_client(), extension["sessions"], extension["continuity"], headers)
    app.extensions["advocacy"]["engine"].dispose()


@dataclass
class Instance:
    client: FlaskClient
    sessions: sessionmaker
    continuity: Continuity
    headers: dict[str, str]


def deliver(app, event: Event, *, auto_accept: bool = False, intake: FakeIntake | None = None) -> None:
    """One delivery through EventHandlers (the catalogue's checks, inbox + one transaction), as the worker's
    consumer does."""
    handled = subscriptions(app.continuity, intake or FakeIntake(), auto_accept=auto_accept)
    EventHandlers(f"advocacy.{PROVIDER}", app.sessions, Inbox, handled, trusted={"guest"})(event)


def offered(referral_id: str | None = None, provider_id: str = PROVIDER, languages=("sq",)) -> Event:
    return arriving(
        payload(
            "referral.offered",
            referral_id=referral_id or str(uuid.uuid4()),
            offer_id=str(uuid.uuid4()),
            provider_id=provider_id,
            org_id="met-police",
            offered_at="2026-01-05T10:00:00+00:00",
            respond_by="2026-01-06T10:00:00+00:00",
            summary={"is_child": False, "pathway": "nrm", "region": "london", "languages": list(languages)},
        )
    )


def confirmed(case: dict, provider_id: str = PROVIDER) -> Event:
    """intake's allocation.confirmed of our acceptance, addressed to `provider_id`."""
    return arriving(
        payload(
            "allocation.confirmed",
            referral_id=case["referral_id"],
            offer_id=case["offer_id"],
            provider_id=provider_id,
            case_id=case["id"],
        )
    )


def withdrawn(referral_id: str, provider_id: str = PROVIDER, offer_id: str | None = None) -> Event:
    return arriving(payload("offer.withdrawn", referral_id=referral_id, provider_id=provider_id, offer_id=offer_id))


def add_advocate(app, max_caseload: int = 5, languages=("sq",)) -> dict:
    body = {
        "name": "Advocate Synthetic-Jo",
        "email": f"{uuid.uuid4().hex[:8]}@charity-a.example",
        "languages": list(languages),
        "max_caseload": max_caseload,
    }
    response = app.client.post("/v1/advocates", json=body, headers=app.headers)
    assert response.status_code == 201
    return response.get_json()


def staged(app, event_type: str) -> list[dict]:
    with app.sessions.begin() as session:
        rows = session.scalars(select(Outbox).where(Outbox.type == event_type).order_by(Outbox.created_at))
        return [json.loads(row.payload)["data"] for row in rows]


def accepted_case(app) -> dict:
    add_advocate(app)
    event = offered()
    deliver(app, event, auto_accept=True)
    [case] = app.client.get("/v1/cases", headers=app.headers).get_json()
    return app.client.get(f"/v1/cases/{case['id']}", headers=app.headers).get_json()


def test_with_auto_accept_an_offer_is_accepted_at_once_by_the_same_rules_as_a_person(advocacy):
    add_advocate(advocacy, languages=["en"])
    speaker = add_advocate(advocacy, languages=["sq"])
    event = offered(languages=["sq"])
    deliver(advocacy, event, auto_accept=True)
    [case] = advocacy.client.get("/v1/cases", headers=advocacy.headers).get_json()
    assert case["advocate"]["id"] == speaker["id"] and case["status"] == "opening"
    [message] = staged(advocacy, "offer.accepted")
    assert message["offer_id"] == event.data["offer_id"] and message["case_id"] == case["id"]
    timeline = advocacy.client.get(f"/v1/cases/{case['id']}", headers=advocacy.headers).get_json()["timeline"]
    assert [(t["kind"], t["actor"]) for t in timeline] == [
        ("offer_received", "/intake"),
        ("offer_accepted", "auto-accept"),
    ]


def test_with_auto_accept_and_nobody_with_room_the_offer_stays_pending(advocacy):
    add_advocate(advocacy, max_caseload=1)
    deliver(advocacy, offered(), auto_accept=True)
    second = offered()
    deliver(advocacy, second, auto_accept=True)
    pending = advocacy.client.get("/v1/offers?status=pending", headers=advocacy.headers).get_json()
    assert [o["id"] for o in pending] == [second.data["offer_id"]]
    assert len(staged(advocacy, "offer.accepted")) == 1


def test_without_auto_accept_an_offer_waits_for_a_person(advocacy):
    add_advocate(advocacy)
    deliver(advocacy, offered(), auto_accept=False)
    assert advocacy.client.get("/v1/offers?status=pending", headers=advocacy.headers).get_json()
    assert staged(advocacy, "offer.accepted") == []


def test_an_offer_addressed_to_another_provider_is_parked_and_changes_nothing(advocacy):
    with pytest.raises(PermanentError, match="addressed to another"):
        deliver(advocacy, offered(provider_id="charity-b"), auto_accept=True)
    assert advocacy.client.get("/v1/offers", headers=advocacy.headers).get_json() == []


def test_an_offer_event_without_its_ids_is_parked_not_retried(advocacy):
    event = offered()
    broken = dataclasses.replace(event, data={k: v for k, v in event.data.items() if k != "offer_id"})
    with pytest.raises(PermanentError, match="offer_id"):
        deliver(advocacy, broken)
    assert advocacy.client.get("/v1/offers", headers=advocacy.headers).get_json() == []


def test_allocation_fetches_the_referral_stores_it_opens_the_case_and_stages_case_opened(advocacy):
    case = accepted_case(advocacy)
    intake = FakeIntake()
    deliver(advocacy, confirmed(case), intake=intake)
    assert intake.fetched == [case["referral_id"]]
    opened = advocacy.client.get(f"/v1/cases/{case['id']}", headers=advocacy.headers).get_json()
    assert opened["status"] == "open"
    assert opened["referral"]["id"] == case["referral_id"] and opened["referral"]["subject"]["given_name"]
    kinds = [t["kind"] for t in opened["timeline"]]
    # Opening plans the case's first NRM clock (the worker's casework, with its case-opening hook).
    assert kinds == ["offer_received", "offer_accepted", "referral_disclosed", "case_opened", "clock_started"]
    [message] = staged(advocacy, "case.opened")
    assert message == {
        "referral_id": case["referral_id"],
        "case_id": case["id"],
        "provider_id": PROVIDER,
        "status": "open",
    }
    assert "given_name" not in json.dumps(staged(advocacy, "case.opened"))


def test_an_allocation_addressed_to_another_provider_is_parked_without_fetching(advocacy):
    case = accepted_case(advocacy)
    intake = FakeIntake()
    with pytest.raises(PermanentError, match="addressed to another"):
        deliver(advocacy, confirmed(case, provider_id="charity-b"), intake=intake)
    assert intake.fetched == [] and staged(advocacy, "case.opened") == []


def test_when_intake_cannot_be_reached_the_allocation_fails_for_a_retry_and_changes_nothing(advocacy):
    case = accepted_case(advocacy)
    event = confirmed(case)
    with pytest.raises(requests.ConnectionError):
        deliver(advocacy, event, intake=FakeIntake(fail=True))
    assert staged(advocacy, "case.opened") == []
    with advocacy.sessions.begin() as session:
        assert session.get(Case, case["id"]).status == "opening"
        assert session.scalar(select(func.count()).select_from(Inbox)) == 1  # only the offer's delivery
    deliver(advocacy, event, intake=FakeIntake())  # the retry succeeds
    assert len(staged(advocacy, "case.opened")) == 1


def test_allocation_naming_a_case_we_never_opened_is_parked(advocacy):
    case = accepted_case(advocacy)
    with pytest.raises(PermanentError, match="never opened"):
        deliver(advocacy, confirmed({**case, "id": str(uuid.uuid4())}))


def test_withdrawal_lapses_a_pending_offer_and_closes_a_live_case(advocacy):
    case = accepted_case(advocacy)
    deliver(advocacy, confirmed(case))
    pending = offered()
    deliver(advocacy, pending, auto_accept=False)

    deliver(advocacy, withdrawn(pending.data["referral_id"], offer_id=pending.data["offer_id"]))
    deliver(advocacy, withdrawn(case["referral_id"]))

    with advocacy.sessions.begin() as session:
        assert session.get(Offer, pending.data["offer_id"]).status == "withdrawn"
    closed = advocacy.client.get(f"/v1/cases/{case['id']}", headers=advocacy.headers).get_json()
    assert closed["status"] == "closed"
    assert [t["kind"] for t in closed["timeline"]][-2:] == ["referral_withdrawn", "case_closed"]
    advocates = advocacy.client.get("/v1/advocates", headers=advocacy.headers).get_json()
    assert advocates[0]["caseload"] == 0  # a closed case no longer counts
    answer = advocacy.client.post(f"/v1/offers/{pending.data['offer_id']}/accept", json={}, headers=advocacy.headers)
    assert answer.status_code == 409


def test_allocation_after_a_withdrawal_does_not_reopen_the_case(advocacy):
    case = accepted_case(advocacy)
    deliver(advocacy, withdrawn(case["referral_id"]))
    intake = FakeIntake()
    deliver(advocacy, confirmed(case), intake=intake)
    assert intake.fetched == [] and staged(advocacy, "case.opened") == []


def test_a_withdrawal_of_a_referral_we_never_saw_changes_nothing(advocacy):
    deliver(advocacy, withdrawn(str(uuid.uuid4())))
    assert advocacy.client.get("/v1/offers", headers=advocacy.headers).get_json() == []


def test_a_duplicate_delivery_has_no_second_effect(advocacy):
    add_advocate(advocacy)
    offer = offered()
    deliver(advocacy, offer, auto_accept=True)
    deliver(advocacy, offer, auto_accept=True)  # the same message again (same event id)
    [case] = advocacy.client.get("/v1/cases", headers=advocacy.headers).get_json()
    intake = FakeIntake()
    allocation = confirmed(case)
    deliver(advocacy, allocation, intake=intake)
    deliver(advocacy, allocation, intake=intake)
    assert intake.fetched == [case["referral_id"]]
    assert len(staged(advocacy, "offer.accepted")) == 1 and len(staged(advocacy, "case.opened")) == 1
    with advocacy.sessions.begin() as session:
        assert session.scalar(select(func.count()).select_from(Offer)) == 1
        assert session.scalar(select(func.count()).select_from(Case)) == 1
    timeline = advocacy.client.get(f"/v1/cases/{case['id']}", headers=advocacy.headers).get_json()["timeline"]
    assert len(timeline) == 5
