"""advocacy's event handlers on the real PostgreSQL: auto-accept, allocation (disclosure of the full
referral through a fake intake), withdrawal, and at-most-once effects through the inbox."""

from __future__ import annotations

import dataclasses
import json
import re
import uuid

import pytest
import requests
from sqlalchemy import func, select

from services.advocacy.models import Case, Inbox, Offer
from shared.messaging.errors import PermanentError
from support.advocacy import (
    PROVIDER,
    FakeIntake,
    accepted_case,
    add_advocate,
    confirmed,
    deliver,
    offered,
    staged,
    withdrawn,
)
from support.db import statements_sent


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


def test_an_auto_accepted_offer_is_written_once_already_accepted(advocacy):
    """The advocate is chosen before the offer is written: one INSERT of the offer, no UPDATE of its status."""
    add_advocate(advocacy)
    with statements_sent(advocacy.advocacy.engine) as written:
        deliver(advocacy, offered(), auto_accept=True)
    offers = [s.split()[0] for s in written if re.match(r"(INSERT INTO|UPDATE) offers\b", s)]
    assert offers == ["INSERT"]
    [case] = advocacy.client.get("/v1/cases", headers=advocacy.headers).get_json()
    assert case["status"] == "opening"


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
        "local_authority_org_id": None,  # an adult's case
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
