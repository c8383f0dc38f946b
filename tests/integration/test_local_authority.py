"""The child's local authority (issue 13 item 4, Done when "for a child the local authority's subscription gets
the webhook, with no personal data in it"), on the real PostgreSQL of intake, a charity and notifications and the
real broker: an agency registered for the child's ONS code subscribes as its org; a child's referral, allocation
and turning_18 transition are each relayed from their outbox to RabbitMQ, handed to notifications' handlers and
followed as signed webhooks to the receiver; an adult's referral sends the local authority nothing. Also the
agency directory's API and its 4xx."""

from __future__ import annotations

import json

from sqlalchemy import select
from standardwebhooks import Webhook

from services.advocacy.models import Case
from services.advocacy.models import Outbox as AdvocacyOutbox
from services.intake.models import Outbox as IntakeOutbox
from services.intake.worker import QUEUE
from shared.inbox import EventHandlers
from shared.messaging.envelope import Event
from shared.testing import referral_body
from support.advocacy import PROVIDER, add_advocate, deliver
from support.flows import IntakeOverHttp, relayed
from support.receivers import WebhookReceiver

POLICE = ("met-police", "police", "referrals:write referrals:read")
ADMIN = ("platform", "coordinator", "providers:admin")
COUNCIL = "westminster-cs-synthetic"  # children's services for E09000033, referral_body's local authority
CHILDRENS_SERVICES = {
    "name": "Westminster Children's Services",
    "kind": "childrens_services",
    "local_authority_codes": ["E09000033"],
}
LA_EVENTS = ["referral.received", "referral.allocated", "referral.escalated", "transition.planned", "case.opened"]


def test_a_childs_local_authority_gets_its_referral_allocation_and_turning_18_with_no_personal_data(
    intake, advocacy, notifications, auth_header, amqp_url
):
    app, sessions = intake
    client = app.test_client()
    root, notifications_client = notifications
    provider = {"name": "Charity A", "regions": ["london"], "serves": ["adult", "child"], "capacity": 3}
    assert client.put(f"/v1/providers/{PROVIDER}", json=provider, headers=auth_header(*ADMIN)).status_code == 201
    registered = client.put(f"/v1/agencies/{COUNCIL}", json=CHILDRENS_SERVICES, headers=auth_header(*ADMIN))
    assert registered.status_code == 201
    add_advocate(advocacy)
    use = app.extensions["intake"].use_cases
    to_intake = EventHandlers(QUEUE, use.units, use.handlers, trusted={"guest"})
    reader = IntakeOverHttp(client, auth_header(PROVIDER, "provider", "referrals:read"))

    def refer(body: dict, *, child: bool) -> tuple[str, list[Event]]:
        """Submitted, offered to the charity, accepted and its case opened: the referral id, and the events
        notifications is given (intake's received and allocated, the charity's case.opened and, for a child,
        its turning_18 transition.planned)."""
        response = client.post("/v1/referrals", json=body, headers=auth_header(*POLICE))
        assert response.status_code == 201, response.get_json()
        first = relayed(amqp_url, sessions, IntakeOutbox, "referral.received", f"referral.offered.{PROVIDER}")
        deliver(advocacy, first[f"referral.offered.{PROVIDER}"], auto_accept=True)
        to_intake(relayed(amqp_url, advocacy.sessions, AdvocacyOutbox, "offer.accepted")["offer.accepted"])
        allocated = relayed(amqp_url, sessions, IntakeOutbox, "referral.allocated", f"allocation.confirmed.{PROVIDER}")
        deliver(advocacy, allocated[f"allocation.confirmed.{PROVIDER}"], intake=reader)
        case_keys = ("case.opened", "transition.planned") if child else ("case.opened",)
        case_news = relayed(amqp_url, advocacy.sessions, AdvocacyOutbox, *case_keys)
        news = [first["referral.received"], allocated["referral.allocated"], *case_news.values()]
        for event in news:
            root.handlers(event)
        return response.get_json()["id"], news

    with WebhookReceiver() as receiver:
        subscription = notifications_client.post(
            "/v1/subscriptions",
            json={"url": receiver.url + "/hooks", "events": LA_EVENTS},
            headers=auth_header(COUNCIL, "local_authority", "subscriptions:write"),
        ).get_json()
        child = referral_body(child=True, seed=41)
        subject = child["subject"]
        personal_data = (subject["given_name"], subject["family_name"], subject["date_of_birth"], child["narrative"])
        personal_data += (child["external_reference"], child["referrer"]["email"])
        child_id, child_news = refer(child, child=True)
        assert [e.data["local_authority_org_id"] for e in child_news] == [COUNCIL] * 4  # every event names it
        assert child_news[-1].data["kind"] == "turning_18"
        adult_id, adult_news = refer(referral_body(seed=42), child=False)  # the same local authority, but an adult
        assert {e.data["local_authority_org_id"] for e in adult_news} == {None}

        assert root.dispatcher.dispatch_due() == 3  # received, allocated, turning_18: not case.opened, not the adult
        hooks = receiver.wait_for(lambda items: items if len(items) == 3 else None)
        bodies = {}
        for hook in hooks:
            verified = Webhook(subscription["secret"]).verify(hook.body, hook.headers)
            bodies[verified["type"]] = verified["data"]
            raw = hook.body.decode() if isinstance(hook.body, bytes) else hook.body
            for personal in personal_data:
                assert personal not in raw
        assert set(bodies) == {"referral.received", "referral.allocated", "transition.planned"}
        assert {data["referral_id"] for data in bodies.values()} == {child_id}
        assert all(data["external_reference"] is None for data in bodies.values())
        assert bodies["transition.planned"]["kind"] == "turning_18"
        assert adult_id not in json.dumps(bodies)

    with advocacy.sessions() as session:
        kept = {
            c.referral_id: (c.local_authority_org_id, c.local_authority_name) for c in session.scalars(select(Case))
        }
    assert kept == {child_id: (COUNCIL, CHILDRENS_SERVICES["name"]), adult_id: (None, None)}
    shown = {
        case["referral_id"]: case for case in advocacy.client.get("/v1/cases", headers=advocacy.headers).get_json()
    }
    child_case = advocacy.client.get(f"/v1/cases/{shown[child_id]['id']}", headers=advocacy.headers).get_json()
    assert (child_case["local_authority_org_id"], child_case["local_authority_name"]) == kept[child_id]
    assert shown[adult_id]["local_authority_org_id"] is None


def test_the_agency_directory_validates_names_each_bad_field_and_lists_for_a_charity(intake, auth_header):
    app, _ = intake
    client = app.test_client()
    admin = auth_header(*ADMIN)
    refused = {
        "name": {**CHILDRENS_SERVICES, "name": ""},
        "kind": {**CHILDRENS_SERVICES, "kind": "school"},
        "local_authority_codes": {**CHILDRENS_SERVICES, "local_authority_codes": ["E0900003X"]},
        "colour": {**CHILDRENS_SERVICES, "colour": "blue"},
    }
    for field, body in refused.items():
        response = client.put(f"/v1/agencies/{COUNCIL}", json=body, headers=admin)
        assert response.status_code == 422 and field in response.get_json()["errors"]["json"], (field, response.json)
    empty = client.put(
        f"/v1/agencies/{COUNCIL}", json={**CHILDRENS_SERVICES, "local_authority_codes": []}, headers=admin
    )
    assert empty.status_code == 422 and "local_authority_codes" in empty.get_json()["errors"]["json"]
    bad_id = client.put("/v1/agencies/-bad id", json=CHILDRENS_SERVICES, headers=admin)
    assert bad_id.status_code == 422 and "org_id" in bad_id.get_json()["errors"]["path"]
    assert (
        client.put(f"/v1/agencies/{COUNCIL}", json=CHILDRENS_SERVICES, headers=auth_header(*POLICE)).status_code == 403
    )
    assert client.put(f"/v1/agencies/{COUNCIL}", json=CHILDRENS_SERVICES).status_code == 401

    assert client.put(f"/v1/agencies/{COUNCIL}", json=CHILDRENS_SERVICES, headers=admin).status_code == 201
    police = {"name": "Met Police", "kind": "police", "local_authority_codes": ["E09000033", "E09000007"]}
    assert client.put("/v1/agencies/met-police", json=police, headers=admin).status_code == 201
    updated = client.put(f"/v1/agencies/{COUNCIL}", json={**CHILDRENS_SERVICES, "name": "A Council CS"}, headers=admin)
    assert updated.status_code == 200 and updated.get_json()["local_authority_codes"] == ["E09000033"]
    provider = {"name": "Zed Charity", "regions": ["london"], "serves": ["adult"], "capacity": 1}
    assert client.put("/v1/providers/zed-charity", json=provider, headers=admin).status_code == 201

    charity = auth_header(PROVIDER, "provider", "cases:read")
    agencies = client.get("/v1/directory/agencies", headers=charity)
    assert agencies.status_code == 200
    assert agencies.get_json() == [
        {"org_id": COUNCIL, "name": "A Council CS", "kind": "childrens_services"},
        {"org_id": "met-police", "name": "Met Police", "kind": "police"},
    ]  # by name: ids, names and kinds only
    assert client.get("/v1/directory/providers", headers=charity).get_json() == [
        {"id": "zed-charity", "name": "Zed Charity"}
    ]
    assert client.get("/v1/directory/agencies", headers=auth_header(*POLICE)).status_code == 403
    spec = client.get("/openapi.json").get_json()
    assert {"/v1/agencies/{org_id}", "/v1/directory/agencies", "/v1/directory/providers"} <= set(spec["paths"])
