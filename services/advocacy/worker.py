"""advocacy's background process: consumes `advocacy.<PROVIDER_ID>`, relays the outbox, fires the clocks.

python -m services.advocacy.worker
"""

from __future__ import annotations

import logging

from services.advocacy.bootstrap import make_continuity
from services.advocacy.casework.intake_client import IntakeClient, ReferralSource
from services.advocacy.config import AdvocacyConfig
from services.advocacy.continuity.scheduler import ClockScheduler
from services.advocacy.continuity.wall_clock import WallClock
from services.advocacy.handlers import subscriptions
from services.advocacy.models import Inbox, Outbox
from shared.auth.tokens import ServiceTokens
from shared.config import Settings
from shared.db import make_engine, make_session_factory
from shared.inbox import EventHandlers
from shared.logs import configure_logging
from shared.messaging.consumer import Consumer
from shared.messaging.relay import OutboxRelay
from shared.messaging.topology import QueueSpec
from shared.messaging.worker import Loop, main_exit, run_loops
from shared.telemetry import setup_tracing

log = logging.getLogger(__name__)


def build_loops(
    settings: Settings, intake: ReferralSource | None = None, *, wall_clock: WallClock | None = None
) -> dict[str, Loop]:
    """The consumer, the relay and the clock scheduler of one provider's instance, on its own database."""
    config = AdvocacyConfig.from_settings(settings)
    continuity = make_continuity(config, wall_clock)
    sessions = make_session_factory(make_engine(settings.database_url))
    if intake is None:
        tokens = ServiceTokens(settings, org=config.provider_id, org_kind="provider", scopes=["referrals:read"])
        intake = IntakeClient(config.intake_url, tokens)
    relay = OutboxRelay(
        settings.amqp_url,
        sessions,
        Outbox,
        name=f"advocacy-{config.provider_id}",
        poll_interval=settings.outbox_poll_interval,
        declare_exchanges=settings.declare_exchanges,
    )
    handled = subscriptions(continuity, intake, auto_accept=config.auto_accept)
    handlers = EventHandlers(
        config.queue,
        sessions,
        Inbox,
        handled,
        trusted=config.trusted_publishers,
        after_commit=relay.wake,  # accepted offers and opened cases leave at once, not at the next poll
    )
    spec = QueueSpec(
        config.queue,
        # Derived from the handlers: every key ends in this provider's id (events addressed to it alone).
        bindings=handled.bindings,
        delivery_limit=settings.delivery_limit,
        retry_delay_ms=settings.retry_delay_ms,
        # A charity's own broker user may not declare the platform's exchanges (deploy/rabbitmq/).
        declare_exchanges=settings.declare_exchanges,
    )
    consumer = Consumer(
        settings.amqp_url,
        spec,
        handlers,
        max_attempts=settings.max_attempts,
        prefetch=settings.prefetch,
        lanes=settings.consumer_lanes,
    )
    log.info(
        "advocacy worker ready",
        extra={"provider_id": config.provider_id, "queue": config.queue, "auto_accept": config.auto_accept},
    )
    # One scheduler per worker process; on PostgreSQL several workers may run it (each clock fires once).
    scheduler = ClockScheduler(
        sessions,
        config.provider_id,
        continuity.wall_clock,
        interval=config.clock_tick_seconds,
        after_commit=relay.wake,
    )
    return {"consumer": consumer.run, "relay": relay.run, "clocks": scheduler.run}


def main() -> int:
    settings = Settings.from_env("advocacy")
    configure_logging("advocacy-worker")
    setup_tracing("advocacy-worker")
    return run_loops(build_loops(settings))


if __name__ == "__main__":
    main_exit(main())
