"""intake's statements built once (services.intake.repositories) on the real PostgreSQL: the directory routing
reads in one statement, and the record of disclosures to notifications, which looks up without flushing first."""

from __future__ import annotations

from sqlalchemy import select

from services.intake import recipients
from services.intake.models import Disclosure, Offer
from shared.clock import utcnow
from shared.testing import referral_body
from support.db import statements_sent

POLICE = ("met-police", "police", "referrals:write referrals:read")
ADMIN = ("platform", "coordinator", "providers:admin")


def put_provider(client, auth_header, provider_id: str, capacity: int) -> None:
    body = {"name": provider_id, "regions": ["london"], "serves": ["adult"], "capacity": capacity}
    assert client.put(f"/v1/providers/{provider_id}", json=body, headers=auth_header(*ADMIN)).status_code == 201


def test_the_directory_counts_only_offers_not_yet_answered_against_a_providers_places(intake, auth_header):
    app, sessions = intake
    client = app.test_client()
    put_provider(client, auth_header, "provider-a", 5)
    for _ in range(3):  # each offered to provider-a, the one with most room
        assert client.post("/v1/referrals", json=referral_body(), headers=auth_header(*POLICE)).status_code == 201
    put_provider(client, auth_header, "provider-b", 3)
    with sessions.begin() as session:
        answered = session.scalars(select(Offer).order_by(Offer.id)).first()
        answered.status = "accepted"
    with app.extensions["intake"].use_cases.units() as uow:
        directory = {entry.id: entry for entry in uow.providers.directory()}
    assert {pid: entry.capacity for pid, entry in directory.items()} == {"provider-a": 3, "provider-b": 3}
    assert directory["provider-a"].regions == ["london"] and directory["provider-a"].accepting is True


def test_notifications_told_twice_in_one_transaction_is_recorded_once_and_nothing_is_flushed_to_ask(
    intake, auth_header
):
    app, sessions = intake
    client = app.test_client()
    put_provider(client, auth_header, "provider-a", 5)
    referral_id = client.post("/v1/referrals", json=referral_body(), headers=auth_header(*POLICE)).get_json()["id"]
    with sessions.begin() as session:  # as for a referral from before the record was kept: none yet
        session.execute(Disclosure.__table__.delete().where(Disclosure.purpose == recipients.REFERRAL_EVENTS))
    with app.extensions["intake"].use_cases.units() as uow:
        referral = uow.referrals.get(referral_id)
        referral.updated_at = utcnow()  # a change the unit holds until it commits
        with statements_sent(app.extensions["intake"].engine) as written:
            recipients.told_notifications(uow, referral_id)  # looks, finds none, records one
            recipients.told_notifications(uow, referral_id)  # finds the one it holds: no second
    assert [statement.split()[0] for statement in written] == ["SELECT"]  # one look, no INSERT or UPDATE yet
    with sessions() as session:
        found = session.scalars(select(Disclosure).where(Disclosure.purpose == recipients.REFERRAL_EVENTS)).all()
    assert [(d.referral_id, d.recipient_org) for d in found] == [(referral_id, recipients.NOTIFICATIONS)]
    with app.extensions["intake"].use_cases.units() as uow:  # and the one committed is found in the database
        assert uow.disclosures.recorded(referral_id, recipients.NOTIFICATIONS, recipients.REFERRAL_EVENTS)
