"""On PostgreSQL: notifications acks an event no subscription wants, and that records nothing, without opening a
transaction; an event that says who holds a referral still has one; and a subscription made through the API
(another process's view, as the worker's is) is honoured once the worker's view is at most MAX_AGE old."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import func, select

from services.migrate import migrate
from services.notifications.app import create_app
from services.notifications.bootstrap import QUEUE, bootstrap
from services.notifications.handlers import subscriptions
from services.notifications.interest import MAX_AGE, Interest
from services.notifications.models import Delivery, Inbox, ReferralOwner
from shared.config import Settings
from shared.inbox import EventHandlers
from support.events import arriving, payload

RECEIVED = {"status": "received", "pathway": "nrm", "is_child": False, "region": "london"}
ALLOCATED = {"status": "allocated", "provider_id": "charity-a", "case_id": "case-1"}


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def worker(fresh_database, dev_keys, auth_header):
    """notifications' API, and handlers with a view of the subscriptions of their own (as a worker process's
    is), on a clock the test moves; `begins` counts the transactions the database is asked to open."""
    url = fresh_database("notifications")
    migrate("notifications", url)
    env = {"NOTIFICATIONS_DATABASE_URL": url, "AUTH_PUBLIC_KEY_FILE": str(dev_keys[1]), "WEBHOOK_ALLOW_PRIVATE": "true"}
    notifications = bootstrap(Settings.from_env("notifications", env))
    clock = Clock()
    interest = Interest.of(notifications.sessions, clock=clock)
    handle = EventHandlers(QUEUE, notifications.units, subscriptions(interest), trusted=["guest"])
    begins: list[object] = []
    sa_event.listen(notifications.engine, "begin", begins.append)
    api = create_app(notifications=notifications).test_client()

    def subscribe(org: str, events: list[str]) -> None:
        body = {"url": "http://127.0.0.1:9/hooks", "events": events}
        response = api.post("/v1/subscriptions", json=body, headers=auth_header(org, "police", "subscriptions:write"))
        assert response.status_code == 201, response.get_json()

    def rows(model, *where) -> int:
        with notifications.sessions() as session:
            return session.scalar(select(func.count()).select_from(model).where(*where))

    yield handle, interest, clock, begins, subscribe, rows
    notifications.engine.dispose()


def news(event_type: str, fields: dict, org: str = "met-police", referral_id: str | None = None):
    data = payload(
        event_type, referral_id=referral_id or str(uuid.uuid4()), org_id=org, external_reference="REF-SYN-9", **fields
    )
    return arriving(data)


def test_an_unwanted_event_opens_no_transaction_and_a_new_subscription_is_honoured_within_max_age(worker):
    handle, interest, clock, begins, subscribe, rows = worker
    subscribe("kent-police", ["referral.received"])  # another org's: not this referral's
    interest.wanted()  # the worker's view, read once
    begins.clear()

    unwanted = news("referral.received", RECEIVED)
    assert handle(unwanted) is None
    assert handle(unwanted) is None  # redelivered: still nothing to do, nothing done
    opened = arriving(
        payload("case.opened", referral_id=str(uuid.uuid4()), case_id="case-1", provider_id="charity-a"),
        publisher="advocacy-charity-a",
    )
    assert handle(opened) is None  # no holder known, yet nothing to retry: nobody wants it
    assert begins == []
    assert rows(Inbox) == 0 and rows(ReferralOwner) == 0

    subscribe("met-police", ["referral.received"])  # through the API, as the worker's process would not see
    clock.now += MAX_AGE
    wanted = news("referral.received", RECEIVED)
    handle(wanted)
    assert begins, "the wanted event had no transaction"
    assert rows(Delivery, Delivery.referral_id == wanted.subject) == 1
    assert rows(Inbox, Inbox.message_id == wanted.id) == 1


def test_who_holds_a_referral_is_recorded_though_nobody_subscribes(worker):
    handle, interest, _clock, begins, _subscribe, rows = worker
    interest.wanted()
    begins.clear()
    referral_id = str(uuid.uuid4())

    handle(news("referral.allocated", ALLOCATED, referral_id=referral_id))

    assert begins
    assert rows(ReferralOwner, ReferralOwner.referral_id == referral_id, ReferralOwner.provider_id == "charity-a") == 1
    assert rows(Delivery) == 0


def test_a_batch_of_unwanted_events_opens_no_transaction_and_a_wanted_one_in_it_is_handled(worker):
    handle, interest, _clock, begins, subscribe, rows = worker
    subscribe("met-police", ["referral.allocated"])
    interest.wanted()
    begins.clear()
    unwanted = [handle.accept(news("referral.withdrawn", {"status": "withdrawn"})) for _ in range(3)]

    with handle.batch([event for event, _ in unwanted]) as batch:
        assert [batch.handle(event, handler) for event, handler in unwanted] == [None, None, None]
    assert begins == []

    allocated = handle.accept(news("referral.allocated", ALLOCATED))
    mixed = [unwanted[0], allocated]
    with handle.batch([event for event, _ in mixed]) as batch:
        for event, handler in mixed:
            batch.handle(event, handler)
    assert begins and rows(Delivery, Delivery.referral_id == allocated[0].subject) == 1
