"""advocacy's instance as the tests drive it: one migrated instance on a fresh database, events delivered
through the same checks and inbox as its worker's consumer, a fake intake, and the payloads intake sends."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import requests
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from services.advocacy.bootstrap import Advocacy, Continuity
from services.advocacy.handlers import subscriptions
from services.advocacy.models import Outbox
from services.advocacy.uow import SqlAdvocacyUnitOfWork
from shared.inbox import EventHandlers
from shared.messaging.envelope import Event
from shared.testing import synthetic_person
from support.events import arriving, payload

PROVIDER = "charity-a"
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


@dataclass
class Instance:
    client: FlaskClient
    advocacy: Advocacy  # the app's own instance (services.advocacy.bootstrap)
    headers: dict[str, str]

    @property
    def sessions(self) -> sessionmaker:
        return self.advocacy.sessions

    @property
    def continuity(self) -> Continuity:
        return self.advocacy.continuity

    def unit_of_work(self) -> SqlAdvocacyUnitOfWork:
        return self.advocacy.unit_of_work()


def deliver(app, event: Event, *, auto_accept: bool = False, intake: FakeIntake | None = None) -> None:
    """One delivery through EventHandlers (the catalogue's checks, inbox + one transaction), as the worker's
    consumer does."""
    handled = subscriptions(app.continuity, intake or FakeIntake(), auto_accept=auto_accept)
    EventHandlers(f"advocacy.{PROVIDER}", app.unit_of_work, handled, trusted={"guest"})(event)


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


def add_advocate(app, max_caseload: int = 5, languages=("sq",), *, name: str = "Advocate Synthetic-Jo") -> dict:
    body = {
        "name": name,
        "email": f"{uuid.uuid4().hex[:8]}@charity-a.example",
        "languages": list(languages),
        "max_caseload": max_caseload,
    }
    response = app.client.post("/v1/advocates", json=body, headers=app.headers)
    assert response.status_code == 201
    return response.get_json()


def outbox(app, event_type: str) -> list[dict]:
    """The events of `event_type` the instance has staged, oldest first, as they will be published."""
    with app.sessions.begin() as session:
        rows = session.scalars(select(Outbox).where(Outbox.type == event_type).order_by(Outbox.created_at))
        return [json.loads(row.payload) for row in rows]


def staged(app, event_type: str) -> list[dict]:
    """Their payloads."""
    return [event["data"] for event in outbox(app, event_type)]


def accepted_case(app) -> dict:
    add_advocate(app)
    event = offered()
    deliver(app, event, auto_accept=True)
    [case] = app.client.get("/v1/cases", headers=app.headers).get_json()
    return app.client.get(f"/v1/cases/{case['id']}", headers=app.headers).get_json()
