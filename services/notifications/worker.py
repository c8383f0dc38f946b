"""`python -m services.notifications.worker`: consume referral events, queue and send their webhooks.

Two loops: the consumer of queue `notifications` (turns events into pending deliveries, in one
transaction with the inbox row) and the webhook dispatcher (sends them). Notifications publishes no events,
so there is no outbox relay.
"""

from __future__ import annotations

from services.notifications.config import WebhookSettings
from services.notifications.dispatcher import WebhookDispatcher
from services.notifications.handlers import subscriptions
from services.notifications.models import Inbox
from shared.config import Settings
from shared.db import make_engine, make_session_factory
from shared.inbox import EventHandlers
from shared.logs import configure_logging
from shared.messaging.consumer import Consumer
from shared.messaging.topology import QueueSpec
from shared.messaging.worker import Loop, main_exit, run_loops
from shared.telemetry import setup_tracing

QUEUE = "notifications"


def build_loops(settings: Settings, *, queue: str = QUEUE) -> dict[str, Loop]:
    engine = make_engine(settings.database_url)
    sessions = make_session_factory(engine)
    dispatcher = WebhookDispatcher(sessions, WebhookSettings.from_env(settings.env))
    handled = subscriptions()  # the queue binds exactly the event types handled: the webhook types
    consumer = Consumer(
        settings.amqp_url,
        QueueSpec(
            queue,
            bindings=handled.bindings,
            delivery_limit=settings.delivery_limit,
            retry_delay_ms=settings.retry_delay_ms,
        ),
        EventHandlers(
            queue, sessions, Inbox, handled, trusted=settings.trusted_publishers, after_commit=dispatcher.wake
        ),
        max_attempts=settings.max_attempts,
        prefetch=settings.prefetch,
        lanes=settings.consumer_lanes,
    )
    return {"consumer": consumer.run, "dispatcher": dispatcher.run}


def main() -> int:
    settings = Settings.from_env("notifications")
    configure_logging("notifications")
    setup_tracing("notifications-worker")
    return run_loops(build_loops(settings))


if __name__ == "__main__":
    main_exit(main())
