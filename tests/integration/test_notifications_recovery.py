"""Webhooks that survive an outage, on real PostgreSQL: a dispatcher that dies mid-batch delays only the delivery
in flight; an agency down for longer than the old schedule still gets every webhook; redelivery, ping and secret
rotation through the API, verified at the receiver with the `standardwebhooks` package."""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from collections import Counter
from datetime import timedelta
from types import SimpleNamespace

import pytest
import requests
from sqlalchemy import select, update
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from services.migrate import migrate
from services.notifications.app import create_app
from services.notifications.bootstrap import bootstrap
from services.notifications.config import WebhookSettings
from services.notifications.dispatcher import LEASE_MARGIN, WebhookDispatcher
from services.notifications.domain import parse_retry_schedule, schedule_span
from services.notifications.egress import webhook_session
from services.notifications.models import Delivery, Subscription
from shared.clock import utcnow
from shared.config import Settings
from support.events import arriving, payload
from support.processes import Platform
from support.receivers import WebhookReceiver
from support.waiting import wait_until

WRITE = "subscriptions:write"
TIMEOUT_SECONDS = 1.0  # WEBHOOK_TIMEOUT_SECONDS here: a claim's lease is this and LEASE_MARGIN
# The old default schedule (5 s to an hour, ~1.7 h in all), compressed 4,000 times as the tests compress ours.
OLD_SCHEDULE_COMPRESSED = tuple(wait / 4000 for wait in (5, 30, 120, 600, 1800, 3600))


@pytest.fixture
def receiver():
    with WebhookReceiver() as server:
        yield server


@pytest.fixture
def make_service(fresh_database, dev_keys, auth_header):
    """The notifications service on a fresh database, with `env` over the tests' settings."""
    engines = []

    def make(**env: str) -> SimpleNamespace:
        url = fresh_database("notifications")
        migrate("notifications", url)
        settings = Settings.from_env(
            "notifications",
            {
                "NOTIFICATIONS_DATABASE_URL": url,
                "AUTH_PUBLIC_KEY_FILE": str(dev_keys[1]),
                "WEBHOOK_ALLOW_PRIVATE": "true",
                "WEBHOOK_TIMEOUT_SECONDS": str(TIMEOUT_SECONDS),
                "WEBHOOK_RETRY_SCHEDULE": "0",
                **env,
            },
        )
        notifications = bootstrap(settings, instrument=False)
        engines.append(notifications.engine)
        client = create_app(notifications=notifications).test_client()

        def headers(org: str = "met-police") -> dict[str, str]:
            return auth_header(org, "police", WRITE)

        def subscribe(url: str, events: list[str], org: str = "met-police") -> dict:
            response = client.post("/v1/subscriptions", json={"url": url, "events": events}, headers=headers(org))
            assert response.status_code == 201, response.get_json()
            return response.get_json()

        def deliveries() -> list[Delivery]:
            with notifications.sessions() as session:
                return list(session.scalars(select(Delivery).order_by(Delivery.created_at, Delivery.id)))

        def received(count: int = 1) -> Delivery:
            """Queue `count` referral.received events for met-police; the first one's delivery."""
            for _ in range(count):
                event = arriving(
                    payload(
                        "referral.received",
                        referral_id=str(uuid.uuid4()),
                        org_id="met-police",
                        external_reference="REF-SYN-2",
                        status="received",
                        pathway="nrm",
                        is_child=False,
                        region="london",
                    )
                )
                notifications.handlers(event)
            return deliveries()[-count]

        return SimpleNamespace(
            url=url,
            settings=settings,
            notifications=notifications,
            sessions=notifications.sessions,
            dispatcher=notifications.dispatcher,
            client=client,
            headers=headers,
            subscribe=subscribe,
            deliveries=deliveries,
            received=received,
        )

    yield make
    for engine in engines:
        engine.dispose()


def webhook_ids(items) -> Counter:
    return Counter(item.headers["webhook-id"] for item in items)


class DispatcherKilled(BaseException):
    """Stands for the process dying: no `except Exception` in the dispatcher catches it, nothing is recorded."""


def dies_on_post(number: int):
    """An HTTP session factory whose session sends normally, and dies on its `number`-th POST (before sending)."""

    def make() -> requests.Session:
        session = webhook_session(allow_private=True)
        real_post, posts = session.post, []

        def post(*args, **kwargs):
            posts.append(args)
            if len(posts) == number:
                raise DispatcherKilled()
            return real_post(*args, **kwargs)

        session.post = post  # type: ignore[method-assign]
        return session

    return make


# --- a dispatcher that dies mid-batch ------------------------------------------------------------------


def test_a_dispatcher_killed_mid_batch_delays_only_the_delivery_in_flight(make_service, receiver):
    service = make_service()
    service.subscribe(receiver.url, ["referral.received"])
    service.received(5)
    settings = WebhookSettings(allow_private=True, timeout_seconds=TIMEOUT_SECONDS, retry_schedule=())
    dying = WebhookDispatcher(service.sessions, settings, http=dies_on_post(2))

    with pytest.raises(DispatcherKilled):
        dying.dispatch_due()  # sends the first, records it, claims the second and dies sending it
    killed_at = time.monotonic()
    first = receiver.answered()
    assert len(first) == 1

    stop = threading.Event()
    survivor = threading.Thread(target=service.dispatcher.run, args=(stop,), daemon=True)
    survivor.start()
    try:
        # The three the dead one had not claimed go out at once: nothing waits on the one it held.
        wait_until(lambda: [d.status for d in service.deliveries()].count("delivered") == 4, timeout=3)
        assert time.monotonic() - killed_at < 2
        assert len(receiver.answered()) == 4
        assert [d.status for d in service.deliveries()].count("pending") == 1  # only the one in flight waits
        # The one in flight is taken again once its lease (the timeout and a few seconds) runs out: seconds.
        wait_until(lambda: len(receiver.answered()) == 5, timeout=15)
        recovered_after = time.monotonic() - killed_at
    finally:
        stop.set()
        survivor.join(timeout=10)
    lease = TIMEOUT_SECONDS + LEASE_MARGIN.total_seconds()
    assert lease - 1 <= recovered_after <= lease + 3, recovered_after
    assert set(webhook_ids(receiver.answered()).values()) == {1}  # the delivered one was not sent again
    assert webhook_ids(receiver.answered())[first[0].headers["webhook-id"]] == 1
    assert {d.status for d in service.deliveries()} == {"delivered"}


def test_a_worker_sigkilled_with_a_webhook_in_flight_delays_only_that_one(make_service, receiver, amqp_url, tmp_path):
    """The real worker process, SIGKILLed while the receiver holds its second webhook: the one in flight is sent
    again (same webhook-id) seconds later by another dispatcher, the rest at once, the first never again."""
    timeout = 3.0
    service = make_service(WEBHOOK_TIMEOUT_SECONDS=str(timeout))
    service.subscribe(receiver.url, ["referral.received"])
    service.received(5)
    release = threading.Event()
    receiver.before_reply = lambda received: release.wait(10) if len(receiver.items) == 2 else None
    platform = Platform(tmp_path, {"AMQP_URL": amqp_url})
    worker = platform.start_worker(
        "notifications",
        {
            "NOTIFICATIONS_DATABASE_URL": service.url,
            "WEBHOOK_ALLOW_PRIVATE": "true",
            "WEBHOOK_TIMEOUT_SECONDS": str(timeout),
            "WEBHOOK_RETRY_SCHEDULE": "0",
            "WEBHOOK_CONCURRENCY": "1",  # one at a time, so the second is in flight and three wait behind it
        },
    )
    stop = threading.Event()
    survivor = threading.Thread(target=service.dispatcher.run, args=(stop,), daemon=True)
    try:
        in_flight = wait_until(lambda: receiver.items[1] if len(receiver.items) >= 2 else None, timeout=30)
        platform.stop(worker, signal.SIGKILL)
        killed_at = time.monotonic()
        release.set()
        survivor.start()
        wait_until(lambda: len(receiver.items) >= 5, timeout=3)
        assert time.monotonic() - killed_at < 2.5  # the three behind it, at once
        wait_until(lambda: len(receiver.items) >= 6, timeout=20)
        recovered_after = time.monotonic() - killed_at
        wait_until(lambda: {d.status for d in service.deliveries()} == {"delivered"}, timeout=5)
    finally:
        release.set()
        stop.set()
        survivor.join(timeout=10)
        platform.stop()
    assert recovered_after <= timeout + LEASE_MARGIN.total_seconds() + 2, recovered_after
    sent = webhook_ids(receiver.items)
    assert len(sent) == 5
    assert sent[in_flight.headers["webhook-id"]] == 2  # in flight when killed: sent again, with the same id
    assert sorted(sent.values()) == [1, 1, 1, 1, 2]


# --- an agency down for longer than the old schedule --------------------------------------------------


def test_a_receiver_down_longer_than_the_old_schedule_still_gets_every_webhook(make_service, receiver):
    schedule = "0.2,0.5,1,2,4"  # ours compressed: the retries outlast an outage the old schedule would not
    service = make_service(WEBHOOK_RETRY_SCHEDULE=schedule)
    outage = 3.0
    assert schedule_span(OLD_SCHEDULE_COMPRESSED) < outage < schedule_span(parse_retry_schedule(schedule))
    service.subscribe(receiver.url, ["referral.received"])
    receiver.status = 503
    service.received(4)
    stop = threading.Event()
    dispatcher = threading.Thread(target=service.dispatcher.run, args=(stop,), daemon=True)
    dispatcher.start()
    try:
        time.sleep(outage)
        assert receiver.answered() == [] and len(receiver.answered(503)) >= 8  # tried through the outage
        assert {d.status for d in service.deliveries()} == {"pending"}
        receiver.status = 200
        wait_until(lambda: len(receiver.answered()) == 4, timeout=10)
    finally:
        stop.set()
        dispatcher.join(timeout=10)
    assert set(webhook_ids(receiver.answered()).values()) == {1}
    for ids in (webhook_ids(receiver.answered(503)), webhook_ids(receiver.answered())):
        assert set(ids) == {d.webhook_id for d in service.deliveries()}  # the same id on every attempt
    assert {d.status for d in service.deliveries()} == {"delivered"}


# --- redelivery -----------------------------------------------------------------------------------------


def test_a_failed_delivery_is_redelivered_with_its_original_webhook_id(make_service, receiver):
    service = make_service()
    subscription = service.subscribe(receiver.url, ["referral.received"])
    receiver.status = 503
    delivery = service.received()
    service.dispatcher.dispatch_due()  # schedule "0": two attempts, then failed
    [failed] = service.deliveries()
    assert (failed.status, failed.attempts) == ("failed", 2)

    receiver.status = 204
    response = service.client.post(f"/v1/deliveries/{delivery.id}/redelivery", headers=service.headers())
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    assert (body["id"], body["status"], body["attempts"]) == (delivery.id, "pending", 0)
    assert body["webhook_id"] == delivery.webhook_id
    again = service.client.post(f"/v1/deliveries/{delivery.id}/redelivery", headers=service.headers())
    assert again.status_code == 409  # still pending: its schedule sends it

    assert service.dispatcher.dispatch_due() == 1
    *_, last = receiver.items
    assert last.headers["webhook-id"] == delivery.webhook_id
    assert Webhook(subscription["secret"]).verify(last.body, last.headers)["type"] == "referral.received"
    assert [item.body for item in receiver.items] == [last.body] * 3  # the same bytes each time
    [redelivered] = service.deliveries()
    assert (redelivered.status, redelivered.attempts) == ("delivered", 1)

    # A delivered one may be sent again too (the agency lost what it processed).
    assert service.client.post(f"/v1/deliveries/{delivery.id}/redelivery", headers=service.headers()).status_code == 202


def test_another_orgs_delivery_and_an_unknown_one_are_404(make_service, receiver):
    service = make_service()
    service.subscribe(receiver.url, ["referral.received"])
    receiver.status = 503
    delivery = service.received()
    service.dispatcher.dispatch_due()
    kent = service.headers("kent-police")
    assert service.client.post(f"/v1/deliveries/{delivery.id}/redelivery", headers=kent).status_code == 404
    unknown = service.client.post(f"/v1/deliveries/{uuid.uuid4()}/redelivery", headers=service.headers())
    assert unknown.status_code == 404
    assert [d.status for d in service.deliveries()] == ["failed"]


def test_every_failed_delivery_of_a_subscription_since_a_time_is_redelivered(make_service, receiver):
    service = make_service()
    subscription = service.subscribe(receiver.url, ["referral.received"])
    receiver.status = 503
    service.received(3)
    service.dispatcher.dispatch_due()
    old, *recent = service.deliveries()
    with service.sessions.begin() as session:  # one failed a week ago: before `since`
        session.execute(update(Delivery).where(Delivery.id == old.id).values(created_at=utcnow() - timedelta(days=7)))
    receiver.status = 200
    receiver.items.clear()

    since = (utcnow() - timedelta(days=3)).isoformat()
    path = f"/v1/subscriptions/{subscription['id']}/redelivery"
    response = service.client.post(path, json={"since": since}, headers=service.headers())
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["queued"] == 2
    assert response.get_json()["subscription_id"] == subscription["id"]

    assert service.dispatcher.dispatch_due() == 2
    assert set(webhook_ids(receiver.answered())) == {d.webhook_id for d in recent}
    statuses = {d.id: d.status for d in service.deliveries()}
    assert statuses == {old.id: "failed", **{d.id: "delivered" for d in recent}}

    kent = service.headers("kent-police")
    assert service.client.post(path, json={"since": since}, headers=kent).status_code == 404
    naive = service.client.post(path, json={"since": "2026-01-01T00:00:00"}, headers=service.headers())
    assert naive.status_code == 422 and "since" in naive.get_json()["errors"]["json"]
    assert service.client.post(path, json={}, headers=service.headers()).status_code == 422


# --- ping ------------------------------------------------------------------------------------------------


def test_a_ping_is_signed_and_sent_like_any_webhook(make_service, receiver):
    service = make_service()
    subscription = service.subscribe(receiver.url, ["case.opened"])  # a ping goes whatever the event types

    response = service.client.post(f"/v1/subscriptions/{subscription['id']}/ping", headers=service.headers())

    assert response.status_code == 202, response.get_json()
    queued = response.get_json()
    assert (queued["event_type"], queued["status"], queued["referral_id"]) == ("webhook.ping", "pending", None)
    assert queued["subscription_id"] == subscription["id"]
    assert service.dispatcher.dispatch_due() == 1
    [ping] = receiver.items
    body = Webhook(subscription["secret"]).verify(ping.body, ping.headers)
    assert body["type"] == "webhook.ping"
    assert body["data"] == {"subscription_id": subscription["id"]}
    assert ping.headers["webhook-id"] == queued["webhook_id"]
    listed = service.client.get("/v1/deliveries", headers=service.headers()).get_json()
    assert [(d["id"], d["status"]) for d in listed] == [(queued["id"], "delivered")]

    kent = service.headers("kent-police")
    assert service.client.post(f"/v1/subscriptions/{subscription['id']}/ping", headers=kent).status_code == 404
    assert service.client.post("/v1/subscriptions/no-such-id/ping", headers=service.headers()).status_code == 404


# --- secret rotation -------------------------------------------------------------------------------------


def test_after_a_rotation_both_signatures_verify_until_the_overlap_ends_then_only_the_new(make_service, receiver):
    service = make_service()
    subscription = service.subscribe(receiver.url, ["referral.received"])
    old = subscription["secret"]
    before = utcnow()

    response = service.client.post(f"/v1/subscriptions/{subscription['id']}/secret-rotation", headers=service.headers())

    assert response.status_code == 200, response.get_json()
    rotated = response.get_json()
    new = rotated["secret"]
    assert new.startswith("whsec_") and new != old
    assert rotated["id"] == subscription["id"]
    expires = rotated["previous_secret_expires_at"]
    with service.sessions() as session:
        stored = session.get(Subscription, subscription["id"])
        assert 24 * 3600 - 5 <= (stored.previous_secret_expires_at - before).total_seconds() <= 24 * 3600 + 5
        assert stored.previous_secret_expires_at.isoformat() == expires
    assert new not in json.dumps(service.client.get("/v1/subscriptions", headers=service.headers()).get_json())

    service.received()
    service.dispatcher.dispatch_due()
    [during] = receiver.items
    signatures = during.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    assert Webhook(new).verify(during.body, during.headers)["type"] == "referral.received"
    assert Webhook(old).verify(during.body, during.headers)["type"] == "referral.received"  # not yet changed over

    with service.sessions.begin() as session:  # the overlap ends
        session.get(Subscription, subscription["id"]).previous_secret_expires_at = utcnow() - timedelta(seconds=1)
    service.received()
    service.dispatcher.dispatch_due()
    after = receiver.items[1]
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    assert Webhook(new).verify(after.body, after.headers)["type"] == "referral.received"
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(after.body, after.headers)


def test_another_orgs_subscription_cannot_be_rotated(make_service, receiver):
    service = make_service()
    subscription = service.subscribe(receiver.url, ["referral.received"])
    kent = service.headers("kent-police")
    path = f"/v1/subscriptions/{subscription['id']}/secret-rotation"
    assert service.client.post(path, headers=kent).status_code == 404
    with service.sessions() as session:
        stored = session.get(Subscription, subscription["id"])
        assert (stored.secret, stored.previous_secret) == (subscription["secret"], None)
