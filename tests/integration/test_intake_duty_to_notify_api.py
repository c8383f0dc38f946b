"""Duty to Notify done right, on the real PostgreSQL of intake and of a charity: an advocacy_only referral
reaches the charity with the details the person agreed to share, while the anonymous DtN record holds none
of them and cannot be linked to the referral."""

from __future__ import annotations

import dataclasses
import json

from sqlalchemy import text

from services.advocacy.models import Outbox as AdvocacyOutbox
from services.intake.models import Outbox as IntakeOutbox
from services.intake.worker import QUEUE
from shared.inbox import EventHandlers
from shared.messaging.envelope import Event
from shared.messaging.relay import OutboxRelay
from shared.testing import referral_body
from support.advocacy import PROVIDER, add_advocate, deliver
from support.amqp import declare_tap, drain, running
from support.flows import IntakeOverHttp

POLICE = ("met-police", "police", "referrals:write referrals:read")
ADMIN = ("platform", "coordinator", "providers:admin")
ADVOCACY_ONLY = {"nrm_referral": False, "advocacy": True, "data_sharing": True}


def through_broker(amqp_url: str, sessions, outbox, routing_key: str) -> Event:
    """The staged event as its consumer receives it: relayed from the outbox to the real broker, taken from a
    queue bound to its routing key, with the publisher RabbitMQ validated."""
    tap = f"dtn-test.{routing_key}"
    declare_tap(amqp_url, tap, routing_key)
    relay = OutboxRelay(amqp_url, sessions, outbox, name="dtn-test", poll_interval=0.05)
    with running(relay.run):
        [(properties, body)] = drain(amqp_url, tap, expect=1)
    return dataclasses.replace(Event.from_json(body), routing_key=routing_key, publisher=properties.user_id)


def test_an_advocacy_only_referral_reaches_the_charity_while_the_dtn_record_holds_nothing_linkable(
    intake, advocacy, auth_header, amqp_url
):
    app, sessions = intake
    client = app.test_client()
    directory_entry = {"name": "Charity A", "regions": ["london"], "serves": ["adult"], "capacity": 3}
    assert client.put(f"/v1/providers/{PROVIDER}", json=directory_entry, headers=auth_header(*ADMIN)).status_code == 201
    body = referral_body(consent=ADVOCACY_ONLY, seed=11)

    response = client.post("/v1/referrals", json=body, headers=auth_header(*POLICE))
    assert response.status_code == 201
    created = response.get_json()
    assert created["pathway"] == "advocacy_only" and created["status"] == "offered"
    assert created["duty_to_notify_recorded"] is True and created["duty_to_notify_rule"] == "mlsa2015_s52"

    # The charity is offered it (the minimised summary), accepts, and on allocation reads the consented details.
    add_advocate(advocacy)
    offered = through_broker(amqp_url, sessions, IntakeOutbox, f"referral.offered.{PROVIDER}")
    assert offered.data["summary"]["pathway"] == "advocacy_only"
    assert body["subject"]["given_name"] not in json.dumps(offered.data)  # an offer carries no identifier
    deliver(advocacy, offered, auto_accept=True)
    accepted = through_broker(amqp_url, advocacy.sessions, AdvocacyOutbox, "offer.accepted")
    use = app.extensions["intake"].use_cases
    EventHandlers(QUEUE, use.units, use.handlers, trusted={"guest"})(accepted)
    reader = IntakeOverHttp(client, auth_header(PROVIDER, "provider", "referrals:read"))
    confirmed = through_broker(amqp_url, sessions, IntakeOutbox, f"allocation.confirmed.{PROVIDER}")
    deliver(advocacy, confirmed, intake=reader)
    [case] = advocacy.client.get("/v1/cases", headers=advocacy.headers).get_json()
    opened = advocacy.client.get(f"/v1/cases/{case['id']}", headers=advocacy.headers).get_json()
    assert opened["referral"]["subject"]["given_name"] == body["subject"]["given_name"]
    assert opened["referral"]["subject"]["safe_contact"] == body["subject"]["safe_contact"]
    assert opened["referral"]["pathway"] == "advocacy_only"

    # The anonymous record: one row, statistical codes and a month, nothing that is or points to the referral.
    with sessions() as session:
        referral = (
            session.execute(text("SELECT * FROM referrals WHERE id = :id"), {"id": created["id"]}).mappings().one()
        )
        [record] = session.execute(text("SELECT * FROM duty_to_notify_records")).mappings().all()
    kept = json.dumps({k: str(v) for k, v in record.items()})
    subject = body["subject"]
    for value in (
        referral["id"],
        referral["external_reference"],
        referral["request_hash"],
        referral["received_at"].isoformat(),
        str(referral["received_at"]),
        referral["received_at"].date().isoformat(),
        subject["given_name"],
        subject["family_name"],
        subject["aliases"][0],
        subject["date_of_birth"],
        body["referrer"]["email"],
    ):
        assert value not in kept
    assert record["notified_month"] == referral["referred_at"].strftime("%Y-%m")
    assert (record["rule"], record["notifying_authority_kind"], record["nationality"]) == (
        "mlsa2015_s52",
        "police",
        "AL",
    )
    assert not any(isinstance(v, type(referral["received_at"])) for v in record.values())  # no timestamp at all
