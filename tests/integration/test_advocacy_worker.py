"""advocacy's worker on the real RabbitMQ and PostgreSQL: an offer published on the `referrals`
exchange is consumed, auto-accepted, and `offer.accepted` leaves through the outbox relay; then the
confirmed allocation opens the case and `case.opened` leaves too."""

from __future__ import annotations

import json
import time
import uuid

from opentelemetry import trace
from pika.exceptions import UnroutableError

from services.advocacy.bootstrap import bootstrap
from services.advocacy.models import Case
from services.advocacy.worker import build_loops
from services.migrate import migrate
from shared.config import Settings
from shared.messaging.envelope import Event
from shared.telemetry import carrier_from_current
from support.amqp import declare_tap, drain, publish, running
from support.events import arriving, payload

PROVIDER = "charity-w"


class FakeIntake:
    def __init__(self):
        self.fetched: list[str] = []

    def fetch_referral(self, referral_id: str) -> dict:
        self.fetched.append(referral_id)
        return {"id": referral_id, "status": "allocated"}


def test_the_worker_consumes_an_offer_auto_accepts_it_and_relays_the_events(fresh_database, amqp_url):
    url = fresh_database("advocacy")
    migrate("advocacy", url)
    settings = Settings.from_env(
        "advocacy",
        env={
            "ADVOCACY_DATABASE_URL": url,
            "PROVIDER_ID": PROVIDER,
            "AUTO_ACCEPT": "true",
            "AMQP_URL": amqp_url,
            "AMQP_RETRY_DELAY_MS": "200",
        },
    )
    advocacy = bootstrap(settings, instrument=False)
    engine, sessions = advocacy.engine, advocacy.sessions
    with advocacy.unit_of_work() as uow:
        advocacy.continuity.casework.create_advocate(
            uow,
            name="Advocate Synthetic-Wi",
            email="wi@charity-w.example",
            languages=["sq"],
            max_caseload=3,
        )
    tap = f"tap.{uuid.uuid4().hex[:8]}"
    declare_tap(amqp_url, tap, "offer.accepted", "case.opened")
    intake = FakeIntake()
    loops = build_loops(settings, intake=intake)

    referral_id, offer_id = str(uuid.uuid4()), str(uuid.uuid4())
    offer = arriving(
        payload(
            "referral.offered",
            referral_id=referral_id,
            offer_id=offer_id,
            provider_id=PROVIDER,
            org_id="met-police",
            offered_at="2026-01-05T10:00:00+00:00",
            respond_by="2026-01-06T10:00:00+00:00",
            summary={"is_child": False, "pathway": "nrm", "region": "london", "languages": ["sq"]},
        )
    )
    with running(loops["consumer"]), running(loops["relay"]):
        # The consumer declares its queue on connect: publish once it is bound (mandatory refuses before).
        # Published inside a span, with its context in the headers as intake's relay puts it there.
        with trace.get_tracer("test").start_as_current_span("intake publishes the offer") as span:
            trace_id = format(span.get_span_context().trace_id, "032x")
            _publish_when_bound(amqp_url, offer, f"referral.offered.{PROVIDER}", carrier_from_current())
        [(properties, body)] = drain(amqp_url, tap, expect=1)
        accepted = json.loads(body)
        assert properties.type == "offer.accepted" and accepted["data"]["offer_id"] == offer_id
        # The trace goes on through the handler and the outbox row into the event it caused.
        assert properties.headers["traceparent"].split("-")[1] == trace_id

        allocation = arriving(
            payload(
                "allocation.confirmed",
                referral_id=referral_id,
                offer_id=offer_id,
                provider_id=PROVIDER,
                case_id=accepted["data"]["case_id"],
            )
        )
        publish(amqp_url, allocation)
        [(properties, body)] = drain(amqp_url, tap, expect=1)
        assert properties.type == "case.opened"
        assert json.loads(body)["data"]["case_id"] == accepted["data"]["case_id"]

    assert intake.fetched == [referral_id]
    with sessions.begin() as session:
        assert session.get(Case, accepted["data"]["case_id"]).status == "open"
    engine.dispose()


def _publish_when_bound(
    url: str, event: Event, routing_key: str, headers: dict | None = None, attempts: int = 100
) -> None:
    for _ in range(attempts):
        try:
            publish(url, event, routing_key, headers)
            return
        except UnroutableError:
            time.sleep(0.1)
    raise AssertionError(f"no queue bound to {routing_key}")
