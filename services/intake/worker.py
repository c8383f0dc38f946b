"""intake's worker: consumes providers' answers and capacity, expires overdue offers, relays the outbox."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import sessionmaker

from services.intake.config import IntakeConfig
from services.intake.handlers import subscriptions
from services.intake.models import Inbox, Outbox
from services.intake.offers import Router
from shared.clock import utcnow
from shared.config import Settings
from shared.db import is_unavailable, make_engine, make_session_factory
from shared.inbox import EventHandlers
from shared.logs import configure_logging
from shared.messaging.consumer import Consumer
from shared.messaging.relay import OutboxRelay
from shared.messaging.topology import QueueSpec
from shared.messaging.worker import main_exit, run_loops
from shared.telemetry import setup_tracing

log = logging.getLogger(__name__)

QUEUE = "intake"


class DeadlineSweep:
    """Expires overdue offers every `interval` seconds. Safe to run in every intake worker at once: the
    database decides who expires each offer (Router.expire_due). `now` is injectable for tests."""

    def __init__(
        self,
        router: Router,
        sessions: sessionmaker,
        interval: float,
        on_expired: Callable[[], None],
        now: Callable[[], datetime] = utcnow,
    ):
        self._router, self._sessions, self._interval = router, sessions, interval
        self._on_expired, self._now = on_expired, now

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                if self._router.expire_due(self._sessions, self._now()):
                    self._on_expired()
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
                log.warning(
                    "database unavailable; deadlines checked at the next tick", extra={"error": exc.__class__.__name__}
                )
            stop.wait(self._interval)


def build(settings: Settings) -> dict:
    config = IntakeConfig.from_settings(settings)
    router = Router(config.response)
    sessions = make_session_factory(make_engine(settings.database_url))
    relay = OutboxRelay(settings.amqp_url, sessions, Outbox, name="intake", poll_interval=settings.outbox_poll_interval)
    handled = subscriptions(router)
    consumer = Consumer(
        settings.amqp_url,
        QueueSpec(
            QUEUE, handled.bindings, delivery_limit=settings.delivery_limit, retry_delay_ms=settings.retry_delay_ms
        ),
        EventHandlers(QUEUE, sessions, Inbox, handled, trusted=config.trusted_publishers, after_commit=relay.wake),
        max_attempts=settings.max_attempts,
        prefetch=settings.prefetch,
        lanes=settings.consumer_lanes,
    )
    sweep = DeadlineSweep(router, sessions, config.sweep_seconds, on_expired=relay.wake)
    return {"consumer": consumer.run, "relay": relay.run, "deadlines": sweep.run}


def main() -> int:
    settings = Settings.from_env("intake")
    configure_logging("intake-worker")
    setup_tracing("intake")
    return run_loops(build(settings))


if __name__ == "__main__":
    main_exit(main())
