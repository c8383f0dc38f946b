"""A referral held across the platform, for the data-subject rights tests (issue 14): offered to charity-a,
which declines, then to charity-b, which accepts and opens its case (a recorded disclosure); notifications
hears of it and queues the referrer's webhooks. Every hop goes through the real broker (support.flows.relayed)
and each consumer's own EventHandlers, as the workers run them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from services.advocacy.handlers import subscriptions
from services.advocacy.models import Outbox as AdvocacyOutbox
from services.intake.models import Outbox as IntakeOutbox
from services.intake.worker import QUEUE
from shared.inbox import EventHandlers
from shared.messaging.envelope import Event
from support.advocacy import PROVIDER, Instance, add_advocate
from support.apps import dispose, service_app
from support.flows import IntakeOverHttp, relayed

POLICE = ("met-police", "police", "referrals:write referrals:read")
ADMIN = ("platform", "coordinator", "providers:admin")
SECOND = "charity-b"
DIRECTORY = {"regions": ["london"], "serves": ["adult", "child"], "languages": ["sq"]}


@dataclass
class Held:
    referral_id: str
    intake_app: Any
    second_app: Any  # charity-b's advocacy app
    subscription_id: str
    deliver_to_intake: Any  # (event) -> None
    deliver_to_charity: Any  # (instance, provider id, event) -> None

    @property
    def second(self):
        return self.second_app.extensions["advocacy"]


@contextmanager
def held_by_two_charities(
    intake, advocacy: Instance, notifications, fresh_database, dev_keys, broker_url, auth_header, amqp_url, body
) -> Iterator[Held]:
    app, sessions = intake
    client = app.test_client()
    root, notifications_client = notifications
    second_app = service_app("advocacy", fresh_database("advocacy"), dev_keys, PROVIDER_ID=SECOND, AMQP_URL=broker_url)
    try:
        second = second_app.extensions["advocacy"]
        admin = auth_header(*ADMIN)
        for provider, places in ((PROVIDER, 5), (SECOND, 3)):  # the most spare places first: charity-a
            directory = {**DIRECTORY, "name": provider.title(), "capacity": places}
            assert client.put(f"/v1/providers/{provider}", json=directory, headers=admin).status_code == 201
        add_advocate(advocacy)
        headers_b = auth_header(SECOND, "provider", "offers:respond cases:read cases:write")
        assert second_app.test_client().post(
            "/v1/advocates",
            json={"name": "Advocate Synthetic-Bo", "email": "bo@charity-b.example", "languages": ["sq"],
                  "max_caseload": 5},
            headers=headers_b,
        ).status_code == 201  # fmt: skip
        use = app.extensions["intake"].use_cases
        to_intake = EventHandlers(QUEUE, use.units, use.handlers, trusted={"guest"})

        def deliver(instance, provider: str, event: Event, *, auto_accept: bool = False) -> None:
            reader = IntakeOverHttp(client, auth_header(provider, "provider", "referrals:read"))
            handled = subscriptions(instance.continuity, reader, auto_accept=auto_accept)
            EventHandlers(f"advocacy.{provider}", instance.unit_of_work, handled, trusted={"guest"})(event)

        subscription = notifications_client.post(
            "/v1/subscriptions",
            json={"url": "http://127.0.0.1:9/hooks", "events": ["referral.received", "referral.allocated"]},
            headers=auth_header("met-police", "police", "subscriptions:write"),
        )
        assert subscription.status_code == 201, subscription.get_json()
        response = client.post("/v1/referrals", json=body, headers=auth_header(*POLICE))
        assert response.status_code == 201, response.get_json()
        referral_id = response.get_json()["id"]
        first = relayed(amqp_url, sessions, IntakeOutbox, "referral.received", f"referral.offered.{PROVIDER}")
        deliver(advocacy, PROVIDER, first[f"referral.offered.{PROVIDER}"])
        [offer_a] = advocacy.client.get("/v1/offers", headers=advocacy.headers).get_json()
        declined = advocacy.client.post(
            f"/v1/offers/{offer_a['id']}/decline", json={"reason": "no_capacity"}, headers=advocacy.headers
        )
        assert declined.status_code == 200, declined.get_json()
        to_intake(relayed(amqp_url, advocacy.sessions, AdvocacyOutbox, "offer.declined")["offer.declined"])
        offered_b = relayed(amqp_url, sessions, IntakeOutbox, f"referral.offered.{SECOND}")
        deliver(second, SECOND, offered_b[f"referral.offered.{SECOND}"], auto_accept=True)
        to_intake(relayed(amqp_url, second.sessions, AdvocacyOutbox, "offer.accepted")["offer.accepted"])
        allocated = relayed(amqp_url, sessions, IntakeOutbox, "referral.allocated", f"allocation.confirmed.{SECOND}")
        deliver(second, SECOND, allocated[f"allocation.confirmed.{SECOND}"])  # opens the case: a full fetch
        for event in (first["referral.received"], allocated["referral.allocated"]):
            root.handlers(event)
        yield Held(referral_id, app, second_app, subscription.get_json()["id"], to_intake, deliver)
    finally:
        dispose(second_app)
