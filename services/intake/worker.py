"""intake's worker: consumes providers' answers and capacity, expires overdue offers, relays the outbox, and
applies the retention table (contracts/retention.csv)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from services.intake.bootstrap import Intake, bootstrap
from services.intake.expiry import Expiry
from services.intake.retention import retention as intake_retention
from shared.clock import utcnow
from shared.config import Settings
from shared.db import is_unavailable
from shared.health import HEALTH
from shared.health_server import health_address
from shared.inbox import EventHandlers
from shared.logs import configure_logging
from shared.messaging.partitions import consumer_loops
from shared.messaging.worker import Loop, main_exit, run_loops
from shared.retention import retention_loop
from shared.telemetry import setup_tracing

log = logging.getLogger(__name__)

QUEUE = "intake"


class DeadlineSweep:
    """Expires overdue offers every `interval` seconds. Safe to run in every intake worker at once: the
    database decides who expires each offer (expiry.py). `now` is injectable for tests."""

    def __init__(self, expiry: Expiry, interval: float, now: Callable[[], datetime] = utcnow):
        self._expiry, self._interval, self._now = expiry, interval, now

    def run(self, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    self._expiry.expire_due(self._now())
                    HEALTH.up("database")
                except Exception as exc:
                    if not is_unavailable(exc):
                        raise
                    HEALTH.down("database", exc.__class__.__name__)  # its text may hold the statement's parameters
                    log.warning(
                        "database unavailable; deadlines checked at the next tick",
                        extra={"error": exc.__class__.__name__},
                    )
                stop.wait(self._interval)
        finally:
            HEALTH.up("database")  # a loop that stopped no longer speaks for the database


def loops(intake: Intake, settings: Settings) -> dict[str, Loop]:
    """The worker's loops over a bootstrapped intake (with its relay): consumer, relay, deadline sweep."""
    if intake.relay is None:
        raise ValueError("the worker needs intake bootstrapped with its relay (bootstrap(settings, relay=True))")
    use = intake.use_cases
    handlers = EventHandlers(QUEUE, use.units, use.handlers, trusted=intake.config.trusted_publishers)
    # `consumer`, or with AMQP_PARTITIONS a consumer per partition, this worker's share first.
    consumers = consumer_loops(settings, QUEUE, use.handlers.bindings, handlers)
    sweep = DeadlineSweep(use.expiry, intake.config.sweep_seconds)
    # The retention table's step (contracts/retention.csv), in every worker at once: each row is claimed once.
    kept = retention_loop(intake_retention(intake.sessions), settings.env, utcnow)
    return {**consumers, "relay": intake.relay.run, "deadlines": sweep.run, "retention": kept.run}


def build(settings: Settings) -> dict[str, Loop]:
    return loops(bootstrap(settings, relay=True), settings)


def main() -> int:
    settings = Settings.from_env("intake")
    configure_logging("intake-worker")
    setup_tracing("intake")
    return run_loops(build(settings), health_at=health_address(settings))


if __name__ == "__main__":
    main_exit(main())
