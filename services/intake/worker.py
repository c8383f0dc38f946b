"""intake's worker: consumes providers' answers and relays intake's outbox."""

from __future__ import annotations

from services.intake.handlers import HANDLERS
from services.intake.models import Inbox, Outbox
from shared.config import Settings
from shared.db import make_engine, make_session_factory
from shared.inbox import EventHandlers
from shared.logs import configure_logging
from shared.messaging.consumer import Consumer
from shared.messaging.relay import OutboxRelay
from shared.messaging.topology import QueueSpec
from shared.messaging.worker import main_exit, run_loops
from shared.telemetry import setup_tracing

QUEUE = "intake"
BINDINGS = ("offer.accepted", "offer.declined")


def build(settings: Settings) -> dict:
    sessions = make_session_factory(make_engine(settings.database_url))
    relay = OutboxRelay(settings.amqp_url, sessions, Outbox, name="intake", poll_interval=settings.outbox_poll_interval)
    consumer = Consumer(
        settings.amqp_url,
        QueueSpec(QUEUE, BINDINGS, delivery_limit=settings.delivery_limit, retry_delay_ms=settings.retry_delay_ms),
        EventHandlers(QUEUE, sessions, Inbox, HANDLERS, after_commit=relay.wake),
        max_attempts=settings.max_attempts,
        prefetch=settings.prefetch,
    )
    return {"consumer": consumer.run, "relay": relay.run}


def main() -> int:
    settings = Settings.from_env("intake")
    configure_logging("intake-worker")
    setup_tracing("intake")
    return run_loops(build(settings))


if __name__ == "__main__":
    main_exit(main())
