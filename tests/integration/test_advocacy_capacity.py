"""A charity's instance tells intake its real capacity, and honours intake's deadline for its answer."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from services.advocacy.models import Case, Offer, Outbox
from shared.messaging.envelope import Event
from shared.messaging.errors import PermanentError
from support.advocacy import PROVIDER, add_advocate, deliver, offered, withdrawn
from support.events import arriving, payload


def capacity_reports(app) -> list[int]:
    with app.sessions() as session:
        rows = session.scalars(
            select(Outbox).where(Outbox.type == "provider.capacity_changed").order_by(Outbox.created_at)
        ).all()
    return [json.loads(row.payload)["data"]["capacity"] for row in rows]


def expired(event: Event, provider_id: str = PROVIDER) -> Event:
    ids = {k: event.data[k] for k in ("referral_id", "offer_id")}
    return arriving(payload("offer.expired", **ids, provider_id=provider_id))


def test_capacity_is_announced_when_advocates_join_cases_open_and_cases_close(advocacy):
    add_advocate(advocacy, max_caseload=2)
    add_advocate(advocacy, max_caseload=1)
    offer = offered()
    deliver(advocacy, offer, auto_accept=True)
    deliver(advocacy, withdrawn(offer.data["referral_id"]))
    assert capacity_reports(advocacy) == [2, 3, 2, 3]


def test_an_expired_pending_offer_can_no_longer_be_accepted(advocacy):
    add_advocate(advocacy)
    offer = offered()
    deliver(advocacy, offer)
    deliver(advocacy, expired(offer))
    response = advocacy.client.post(f"/v1/offers/{offer.data['offer_id']}/accept", json={}, headers=advocacy.headers)
    assert response.status_code == 409
    with advocacy.sessions() as session:
        assert session.get(Offer, offer.data["offer_id"]).status == "expired"


def test_an_acceptance_that_crossed_the_deadline_closes_its_case_and_frees_the_place(advocacy):
    add_advocate(advocacy, max_caseload=1)
    offer = offered()
    deliver(advocacy, offer, auto_accept=True)
    deliver(advocacy, expired(offer))
    with advocacy.sessions() as session:
        case = session.scalars(select(Case)).one()
    assert case.status == "closed"
    assert capacity_reports(advocacy)[-1] == 1


def test_an_expiry_addressed_to_another_provider_is_parked_and_changes_nothing(advocacy):
    add_advocate(advocacy)
    offer = offered()
    deliver(advocacy, offer)
    with pytest.raises(PermanentError, match="addressed to another"):
        deliver(advocacy, expired(offer, provider_id="charity-b"))
    with advocacy.sessions() as session:
        assert session.get(Offer, offer.data["offer_id"]).status == "pending"
