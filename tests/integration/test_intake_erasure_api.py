"""Erasure at intake through its API on the real PostgreSQL (issue 14 item 2): who may ask, 202 and Location,
no canary left in any of intake's tables, one request per recipient in the outbox, 410 afterwards, 409 for a
second request, a recipient's confirmation, and a silent recipient overdue once its time has passed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text, update

from services.intake.models import Base, ErasureRecipient, Outbox
from services.intake.worker import QUEUE
from shared.clock import utcnow
from shared.inbox import EventHandlers
from shared.testing import referral_body
from support.events import arriving, payload

POLICE = ("met-police", "police", "referrals:write referrals:read")
OTHER_FORCE = ("west-yorkshire-police", "police", "referrals:write referrals:read")
DPO = ("platform-ops", "ops", "referrals:erase")
ADMIN = ("platform", "coordinator", "providers:admin")
CANARY = "Canary-Intake-Erasure-5519"


@pytest.fixture
def erased(intake, auth_header):
    """met-police's referral, offered to charity-a, with a canary in every free-text field; then its erasure."""
    app, sessions = intake
    client = app.test_client()
    entry = {"name": "Charity A", "regions": ["london"], "serves": ["adult"], "capacity": 3}
    assert client.put("/v1/providers/charity-a", json=entry, headers=auth_header(*ADMIN)).status_code == 201
    body = referral_body(external_reference=f"{CANARY}-ref", narrative=f"{CANARY} narrative")
    body["subject"] |= {"given_name": f"{CANARY}-given", "family_name": f"{CANARY}-family", "aliases": [CANARY]}
    body["referrer"] |= {"name": f"{CANARY} referrer", "email": "canary-5519@example.org"}
    body["risk"]["notes"] = f"{CANARY} risk"
    body["consent"]["obtained_by"] = f"{CANARY} officer"
    created = client.post("/v1/referrals", json=body, headers={**auth_header(*POLICE), "Idempotency-Key": "k-5519"})
    assert created.status_code == 201, created.get_json()
    referral_id = created.get_json()["id"]
    refused = client.post(
        f"/v1/referrals/{referral_id}/erasure", json={"reason": "no"}, headers=auth_header(*OTHER_FORCE)
    )
    assert refused.status_code == 404 and refused.get_json()["errors"]["json"]["referral_id"]
    response = client.post(
        f"/v1/referrals/{referral_id}/erasure", json={"reason": "Art. 17 request"}, headers=auth_header(*POLICE)
    )
    return client, sessions, referral_id, response


def test_an_erasure_leaves_no_canary_asks_each_recipient_and_the_referral_is_gone(erased, auth_header):
    client, sessions, referral_id, response = erased
    assert response.status_code == 202, response.get_json()
    assert response.headers["Location"] == f"/v1/referrals/{referral_id}/erasure"
    status = response.get_json()
    assert (status["status"], status["requested_by"], status["reason"]) == ("pending", "met-police", "Art. 17 request")
    assert [(r["recipient"], r["kind"], r["overdue"]) for r in status["recipients"]] == [
        ("provider.charity-a", "provider", False),
        ("notifications", "notifications", False),
    ]
    with sessions() as session:
        for table in Base.metadata.sorted_tables:
            for row in session.execute(select(table)):
                assert CANARY not in repr(tuple(row)), table.name
        keys = session.scalars(select(Outbox.routing_key).where(Outbox.payload.like(f"%{referral_id}%"))).all()
    assert sorted(keys) == ["referral.erasure_requested.notifications", "referral.erasure_requested.provider.charity-a"]

    gone = client.get(f"/v1/referrals/{referral_id}", headers=auth_header(*POLICE))
    assert gone.status_code == 410 and gone.get_json()["errors"]["json"]["referral_id"]
    assert client.post(f"/v1/referrals/{referral_id}/withdrawal", headers=auth_header(*POLICE)).status_code == 410
    again = client.post(f"/v1/referrals/{referral_id}/erasure", json={"reason": "again"}, headers=auth_header(*DPO))
    assert again.status_code == 409 and again.get_json()["errors"]["json"]["referral_id"]
    assert client.get(f"/v1/referrals/{referral_id}/erasure", headers=auth_header(*OTHER_FORCE)).status_code == 404


def test_a_confirmation_is_shown_with_its_time_and_a_silent_recipient_turns_overdue(erased, auth_header, intake):
    client, sessions, referral_id, response = erased
    erasure_id = _erasure_id(sessions, referral_id)
    use = intake[0].extensions["intake"].use_cases
    done = payload(
        "erasure.completed",
        referral_id=referral_id,
        erasure_id=erasure_id,
        recipient="notifications",
        erased_at=utcnow().isoformat(),
        kept=[{"record": "delivery_log", "because": "audit"}],
    )
    EventHandlers(QUEUE, use.units, use.handlers, trusted={"guest"})(arriving(done, publisher="guest"))
    with sessions.begin() as session:  # a day and an hour pass
        later = utcnow() - timedelta(hours=25)
        session.execute(
            update(ErasureRecipient).where(ErasureRecipient.erasure_id == erasure_id).values(requested_at=later)
        )
    status = client.get(f"/v1/referrals/{referral_id}/erasure", headers=auth_header(*DPO)).get_json()
    by = {r["recipient"]: r for r in status["recipients"]}
    assert by["notifications"]["confirmed_at"] is not None and by["notifications"]["overdue"] is False
    assert by["provider.charity-a"]["confirmed_at"] is None and by["provider.charity-a"]["overdue"] is True
    assert status["status"] == "pending"
    assert {"recipient": "notifications", "record": "delivery_log", "because": "audit"} in status["kept"]


def _erasure_id(sessions, referral_id: str) -> str:
    with sessions() as session:
        return session.execute(text("SELECT id FROM erasures WHERE referral_id = :r"), {"r": referral_id}).scalar_one()
