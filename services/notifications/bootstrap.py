"""notifications' one composition root: everything the API, the worker and the tests run on, made once from
configuration and wired at construction (nothing is patched in afterwards).

    notifications = bootstrap(Settings.from_env("notifications"))
    with notifications.units() as uow: ...

Nothing here does I/O: the engine connects on first use, and the caller sets up logging and tracing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from services.notifications.config import WebhookSettings
from services.notifications.dispatcher import WebhookDispatcher
from services.notifications.egress import UrlGuard
from services.notifications.handlers import subscriptions
from services.notifications.interest import Interest
from services.notifications.models import Outbox
from services.notifications.uow import SqlNotificationsUnitOfWork
from shared.config import Settings
from shared.db import make_engine, make_session_factory
from shared.inbox import EventHandlers

if TYPE_CHECKING:
    from shared.messaging.relay import OutboxRelay

QUEUE = "notifications"


@dataclass(frozen=True)
class Notifications:
    settings: Settings
    webhooks: WebhookSettings
    engine: Engine
    sessions: sessionmaker  # for the API's read-only lists; every write goes through a unit of work
    units: Callable[[], SqlNotificationsUnitOfWork]  # a fresh unit per transaction
    guard: UrlGuard
    dispatcher: WebhookDispatcher
    handlers: EventHandlers  # the consumer's: each event in a unit of work with its inbox row
    interest: Interest  # what the live subscriptions want, as the handlers last read it
    relay: OutboxRelay | None = None  # the worker's: publishes erasure.completed (issue 14)


def bootstrap(settings: Settings, *, queue: str = QUEUE, instrument: bool = True, relay: bool = False) -> Notifications:
    """`queue` names the consumer's queue and its inbox rows; `instrument=False` leaves the engine untraced;
    `relay`: with the outbox relay (the worker's), as the platform's broker user (a trusted publisher)."""
    webhooks = WebhookSettings.from_env(settings.env)
    engine = make_engine(settings.database_url, instrument=instrument)
    sessions = make_session_factory(engine)
    guard = UrlGuard(webhooks.allow_private)
    dispatcher = WebhookDispatcher(sessions, webhooks, guard=guard)
    outbox_relay = None
    if relay:
        # Imported here: the relay brings pika, which an API process never loads (test_api_footprint).
        from shared.messaging.relay import OutboxRelay

        outbox_relay = OutboxRelay(
            settings.amqp_url, sessions, Outbox, name="notifications", poll_interval=settings.outbox_poll_interval
        )
    wakes = [dispatcher.wake] + ([outbox_relay.wake] if outbox_relay is not None else [])

    def woken() -> None:
        for wake in wakes:
            wake()

    # A committed delivery wakes the dispatcher (and an erasure.completed the relay) at once, not at the next poll.
    units = functools.partial(SqlNotificationsUnitOfWork, sessions, after_commit=woken)
    # What the subscriptions want, read by the worker as events ask (at most once a second): an event nobody
    # wants and that changes no record here is acked without a transaction (services/notifications/interest.py).
    interest = Interest.of(sessions)
    handlers = EventHandlers(queue, units, subscriptions(interest), trusted=settings.trusted_publishers)
    return Notifications(
        settings, webhooks, engine, sessions, units, guard, dispatcher, handlers, interest, outbox_relay
    )
