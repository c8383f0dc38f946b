"""Transition and clock events reach agencies as webhooks: the referring organisation as before, and for
transition.* also the receiving agency the transition names, when it subscribes (real PostgreSQL)."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import select

from services.migrate import migrate
from services.notifications.app import create_app
from services.notifications.bootstrap import bootstrap
from services.notifications.models import Delivery
from shared.config import Settings
from shared.messaging.envelope import Event
from support.events import arriving, payload

REFERRER, RECEIVER, BYSTANDER = "met-police", "leeds-city-council", "another-council"


@pytest.fixture
def notifications(fresh_database, dev_keys, auth_header):
    url = fresh_database("notifications")
    migrate("notifications", url)
    env = {"NOTIFICATIONS_DATABASE_URL": url, "AUTH_PUBLIC_KEY_FILE": str(dev_keys[1]), "WEBHOOK_ALLOW_PRIVATE": "true"}
    root = bootstrap(Settings.from_env("notifications", env=env), instrument=False)
    client = create_app(notifications=root).test_client()
    for org in (REFERRER, RECEIVER, BYSTANDER):
        body = {"url": f"http://127.0.0.1:9/{org}", "events": ["transition.planned", "clock.due_soon", "case.closed"]}
        response = client.post(
            "/v1/subscriptions", json=body, headers=auth_header(org, "local_authority", "subscriptions:write")
        )
        assert response.status_code == 201, response.get_json()
    yield root.handlers, root.sessions
    root.engine.dispose()


def advocacy_event(handle, event_type: str, **data) -> Event:
    """charity-a's event about a referral intake allocated to it (notifications first hears the allocation)."""
    referral_id, case_id = str(uuid.uuid4()), str(uuid.uuid4())
    allocation = {"org_id": REFERRER, "external_reference": "MET-2026-7", "status": "allocated"}
    handle(arriving(payload("referral.allocated", referral_id=referral_id, case_id=case_id, provider_id="charity-a",
                            **allocation)))  # fmt: skip
    news = payload(event_type, referral_id=referral_id, case_id=case_id, provider_id="charity-a", **data)
    return arriving(news, publisher="advocacy-charity-a")


def deliveries(sessions, event: Event) -> dict[str, dict]:
    with sessions.begin() as session:
        rows = session.scalars(select(Delivery).where(Delivery.event_id == event.id)).all()
        return {row.org_id: json.loads(row.payload) for row in rows}


def test_a_planned_transition_goes_to_the_referrer_and_to_the_receiving_agency_only(notifications):
    handle, sessions = notifications
    event = advocacy_event(
        handle,
        "transition.planned",
        transition_id=str(uuid.uuid4()),
        kind="relocation",
        status="planned",
        planned_for="2026-05-01",
        date_basis="exact",
        receiving_agency=RECEIVER,
        receiving_provider_id=None,
    )
    handle(event)
    handle(event)  # redelivered: no second webhook
    sent = deliveries(sessions, event)
    assert set(sent) == {REFERRER, RECEIVER}
    assert sent[REFERRER]["data"]["external_reference"] == "MET-2026-7"
    assert sent[RECEIVER]["data"]["external_reference"] is None  # the referrer's own reference stays theirs
    assert sent[RECEIVER]["data"] | {"external_reference": "MET-2026-7"} == sent[REFERRER]["data"]
    assert sent[RECEIVER]["data"]["kind"] == "relocation" and sent[RECEIVER]["data"]["planned_for"] == "2026-05-01"


def test_a_clock_event_goes_to_the_referrer_only(notifications):
    handle, sessions = notifications
    event = advocacy_event(
        handle, "clock.due_soon", clock_id=str(uuid.uuid4()), kind="turning_18", status="due_soon", due_on="2027-01",
        notice_on="2026-12",
    )  # fmt: skip
    handle(event)
    sent = deliveries(sessions, event)
    assert set(sent) == {REFERRER}
    assert sent[REFERRER]["data"] == {
        "referral_id": event.subject,
        "external_reference": "MET-2026-7",
        "status": "due_soon",
        "provider_id": "charity-a",
        "case_id": event.data["case_id"],
        "clock_id": event.data["clock_id"],
        "kind": "turning_18",
        "due_on": "2027-01",
        "transition_id": None,  # a clock of no transition
    }


def test_a_closed_case_reaches_the_referrer_only_with_its_outcome_code(notifications):
    handle, sessions = notifications
    event = advocacy_event(handle, "case.closed", outcome="negative_cg_exit", status="closed")
    handle(event)
    sent = deliveries(sessions, event)
    assert set(sent) == {REFERRER}
    assert sent[REFERRER]["type"] == "case.closed"
    assert sent[REFERRER]["data"] == {
        "referral_id": event.subject,
        "external_reference": "MET-2026-7",
        "status": "closed",
        "provider_id": "charity-a",
        "case_id": event.data["case_id"],
        "outcome": "negative_cg_exit",
    }
