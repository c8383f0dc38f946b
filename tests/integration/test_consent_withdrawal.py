"""Consent withdrawal closes the case and tells the referrer (issue 12 item 4, Done when), on the real PostgreSQL of
intake, a charity and notifications and the real broker: each event is relayed from its outbox to RabbitMQ,
taken from a queue bound to its routing key and handed to its consumer's handlers (the catalogue's checks and
the inbox), and the referrer's webhook is followed to its receiver. Also, through the APIs: consent records and
their 4xx, who may read the referral's body, and a refusal at 18."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select
from standardwebhooks import Webhook

from services.advocacy.models import Outbox as AdvocacyOutbox
from services.intake.models import Outbox as IntakeOutbox
from services.intake.worker import QUEUE
from shared.inbox import EventHandlers
from shared.testing import referral_body
from support.advocacy import PROVIDER, add_advocate, deliver
from support.flows import IntakeOverHttp, relayed
from support.receivers import WebhookReceiver

POLICE = ("met-police", "police", "referrals:write referrals:read")
ADMIN = ("platform", "coordinator", "providers:admin")
COUNCIL = ("leeds-city-council", "local_authority", "referrals:read")


@pytest.fixture
def platform(intake, advocacy, notifications, auth_header, amqp_url):
    """A charity holding an open case for met-police's adult referral, every hop through the broker."""
    app, sessions = intake
    client = app.test_client()
    entry = {"name": "Charity A", "regions": ["london"], "serves": ["adult", "child"], "capacity": 3}
    assert client.put(f"/v1/providers/{PROVIDER}", json=entry, headers=auth_header(*ADMIN)).status_code == 201
    add_advocate(advocacy)
    use = app.extensions["intake"].use_cases
    to_intake = EventHandlers(QUEUE, use.units, use.handlers, trusted={"guest"})

    def refer(body: dict) -> dict:
        response = client.post("/v1/referrals", json=body, headers=auth_header(*POLICE))
        assert response.status_code == 201, response.get_json()
        referral = response.get_json()
        first = relayed(amqp_url, sessions, IntakeOutbox, "referral.received", f"referral.offered.{PROVIDER}")
        deliver(advocacy, first[f"referral.offered.{PROVIDER}"], auto_accept=True)
        to_intake(relayed(amqp_url, advocacy.sessions, AdvocacyOutbox, "offer.accepted")["offer.accepted"])
        allocated = relayed(amqp_url, sessions, IntakeOutbox, "referral.allocated", f"allocation.confirmed.{PROVIDER}")
        reader = IntakeOverHttp(client, auth_header(PROVIDER, "provider", "referrals:read"))
        deliver(advocacy, allocated[f"allocation.confirmed.{PROVIDER}"], intake=reader)
        [case] = advocacy.client.get("/v1/cases", headers=advocacy.headers).get_json()
        assert case["status"] == "open"
        root, _ = notifications
        for news in (first["referral.received"], allocated["referral.allocated"]):
            root.handlers(news)  # notifications learns whose referral it is and who holds it
        return {"referral": referral, "case": case}

    return refer, to_intake, client


def test_consent_withdrawal_closes_the_case_and_tells_the_referrer(
    platform, intake, advocacy, notifications, auth_header, amqp_url
):
    refer, to_intake, client = platform
    _, sessions = intake
    root, notifications_client = notifications
    with WebhookReceiver() as receiver:
        subscription = notifications_client.post(
            "/v1/subscriptions",
            json={"url": receiver.url + "/hooks", "events": ["referral.consent_withdrawn", "case.closed"]},
            headers=auth_header("met-police", "police", "subscriptions:write"),
        ).get_json()
        opened = refer(referral_body(seed=21))
        referral_id, case_id = opened["referral"]["id"], opened["case"]["id"]

        withdrawal = {"purpose": "advocacy", "given": False, "obtained_at": datetime.now(UTC).isoformat()}
        response = client.post(f"/v1/referrals/{referral_id}/consent", json=withdrawal, headers=auth_header(*POLICE))
        assert response.status_code == 201, response.get_json()
        assert response.get_json()["source"] == "referrer"
        again = client.post(f"/v1/referrals/{referral_id}/consent", json=withdrawal, headers=auth_header(*POLICE))
        assert again.status_code == 201  # a second record, and nothing told twice (the relay finds one of each)

        told = relayed(amqp_url, sessions, IntakeOutbox, f"consent.withdrawn.{PROVIDER}", "referral.consent_withdrawn")
        with sessions() as session:
            staged = session.scalars(select(IntakeOutbox.type).where(IntakeOutbox.type.like("%consent%"))).all()
        assert sorted(staged) == ["consent.withdrawn", "referral.consent_withdrawn"]  # once each
        deliver(advocacy, told[f"consent.withdrawn.{PROVIDER}"])
        deliver(advocacy, told[f"consent.withdrawn.{PROVIDER}"])  # redelivered: no second effect
        case = advocacy.client.get(f"/v1/cases/{case_id}", headers=advocacy.headers).get_json()
        assert case["status"] == "closed" and case["timeline"][-1]["detail"].endswith("consent_withdrawn")
        [advocate] = advocacy.client.get("/v1/advocates", headers=advocacy.headers).get_json()
        assert advocate["caseload"] == 0  # the place is free
        kept = advocacy.client.get(f"/v1/cases/{case_id}/consent", headers=advocacy.headers).get_json()
        assert [(r["source"], r["given"]) for r in kept] == [("intake", False)]
        closed = relayed(amqp_url, advocacy.sessions, AdvocacyOutbox, "case.closed")["case.closed"]

        root.handlers(told["referral.consent_withdrawn"])
        root.handlers(closed)
        assert root.dispatcher.dispatch_due() == 2
        hooks = receiver.wait_for(lambda items: items if len(items) == 2 else None)
        bodies = {}
        for hook in hooks:
            verified = Webhook(subscription["secret"]).verify(hook.body, hook.headers)
            bodies[verified["type"]] = verified["data"]
        assert bodies["referral.consent_withdrawn"] == {
            "referral_id": referral_id,
            "external_reference": opened["referral"]["external_reference"],
            "status": "allocated",
            "provider_id": PROVIDER,
            "purpose": "advocacy",
        }
        assert bodies["case.closed"]["outcome"] == "consent_withdrawn"

    # The provider may no longer read the referral: its advocacy consent is withdrawn.
    provider = auth_header(PROVIDER, "provider", "referrals:read")
    assert client.get(f"/v1/referrals/{referral_id}", headers=provider).status_code == 404
    assert client.get(f"/v1/referrals/{referral_id}/consent", headers=provider).status_code == 200


def test_consent_records_and_their_refusals_through_the_api(platform, auth_header):
    refer, _, client = platform
    referral_id = refer(referral_body(seed=22))["referral"]["id"]
    path, police = f"/v1/referrals/{referral_id}/consent", auth_header(*POLICE)
    records = client.get(path, headers=police).get_json()
    assert sorted(r["purpose"] for r in records) == ["advocacy", "data_sharing", "nrm_referral"]
    assert {r["source"] for r in records} == {"submission"}
    now = datetime.now(UTC)
    refused = {
        "purpose": {"purpose": "marketing", "given": True, "obtained_at": now.isoformat()},
        "obtained_at": {"purpose": "advocacy", "given": True, "obtained_at": (now + timedelta(days=1)).isoformat()},
        "recipients": {
            "purpose": "advocacy", "given": True, "obtained_at": now.isoformat(), "recipients": ["leeds-city-council"]
        },
        "colour": {"purpose": "advocacy", "given": True, "obtained_at": now.isoformat(), "colour": "blue"},
    }  # fmt: skip
    for field, body in refused.items():
        response = client.post(path, json=body, headers=police)
        assert response.status_code == 422, (field, response.get_json())
        assert field in response.get_json()["errors"]["json"], (field, response.get_json())
    other = auth_header("other-force", "police", "referrals:write referrals:read")
    record = {"purpose": "advocacy", "given": True, "obtained_at": now.isoformat()}
    assert client.post(path, json=record, headers=other).status_code == 404
    assert client.get(path, headers=other).status_code == 404
    assert client.post("/v1/referrals/no-such-referral/consent", json=record, headers=police).status_code == 404

    # Disclosure follows the data_sharing record in force: a recipient it names reads the body, nobody else.
    council = auth_header(*COUNCIL)
    assert client.get(f"/v1/referrals/{referral_id}", headers=council).status_code == 404
    sharing = {**record, "purpose": "data_sharing", "recipients": ["leeds-city-council"]}
    assert client.post(path, json=sharing, headers=police).status_code == 201
    shown = client.get(f"/v1/referrals/{referral_id}", headers=council)
    assert shown.status_code == 200 and "subject" in shown.get_json()
    assert client.get(f"/v1/referrals/{referral_id}", headers=other).status_code == 404


def test_a_refusal_at_18_ends_as_a_completed_transition_and_a_closed_case(platform, advocacy):
    refer, _, _ = platform
    case_id = refer(referral_body(seed=23))["case"]["id"]
    base, headers = f"/v1/cases/{case_id}", advocacy.headers
    planned = advocacy.client.post(
        f"{base}/transitions", json={"kind": "turning_18", "planned_for": date.today().isoformat()}, headers=headers
    )
    assert planned.status_code == 201, planned.get_json()
    completion = f"{base}/transitions/{planned.get_json()['id']}/completion"

    missing = advocacy.client.post(completion, json={}, headers=headers)
    assert missing.status_code == 422 and "decision" in missing.get_json()["errors"]["json"]
    wrong = advocacy.client.post(completion, json={"decision": "maybe"}, headers=headers)
    assert wrong.status_code == 422 and "decision" in wrong.get_json()["errors"]["json"]

    done = advocacy.client.post(completion, json={"decision": "consent_refused"}, headers=headers)
    assert done.status_code == 200, done.get_json()
    assert (done.get_json()["status"], done.get_json()["decision"]) == ("completed", "consent_refused")
    case = advocacy.client.get(base, headers=headers).get_json()
    assert case["status"] == "closed" and "declined_adult_support_at_18" in case["timeline"][-1]["detail"]
    assert advocacy.client.post(completion, json={"decision": "consent_given"}, headers=headers).status_code == 409
    record = {"purpose": "advocacy", "given": True, "obtained_at": datetime.now(UTC).isoformat()}
    assert advocacy.client.post(f"{base}/consent", json=record, headers=headers).status_code == 409  # read-only
    [ended] = advocacy.client.get(f"{base}/transitions", headers=headers).get_json()
    assert (ended["status"], ended["missed_at"]) == ("completed", None)  # never a forced `missed`
