"""advocacy's background process: consumes `advocacy.<PROVIDER_ID>`, relays the outbox, fires the clocks.

python -m services.advocacy.worker
"""

from __future__ import annotations

import logging

from services.advocacy.bootstrap import bootstrap
from services.advocacy.casework.intake_client import IntakeClient, ReferralSource
from services.advocacy.config import settings_from_env
from services.advocacy.continuity.scheduler import ClockScheduler
from services.advocacy.continuity.wall_clock import WallClock
from services.advocacy.handlers import subscriptions
from services.advocacy.retention import retention as advocacy_retention
from shared.auth.tokens import ServiceTokens
from shared.config import Settings
from shared.health_server import health_address
from shared.inbox import EventHandlers
from shared.logs import configure_logging
from shared.messaging.consumer import Consumer
from shared.messaging.worker import Loop, main_exit, run_loops
from shared.retention import retention_loop
from shared.telemetry import setup_tracing

log = logging.getLogger(__name__)


def build_loops(
    settings: Settings, intake: ReferralSource | None = None, *, wall_clock: WallClock | None = None
) -> dict[str, Loop]:
    """The consumer, the relay and the clock scheduler of one provider's instance, on its own database."""
    advocacy = bootstrap(settings, wall_clock=wall_clock, relay=True)
    config, continuity = advocacy.config, advocacy.continuity
    assert advocacy.relay is not None  # asked for above
    if intake is None:
        tokens = ServiceTokens(settings, org=config.provider_id, org_kind="provider", scopes=["referrals:read"])
        intake = IntakeClient(config.intake_url, tokens)
    handled = subscriptions(continuity, intake, auto_accept=config.auto_accept)
    handlers = EventHandlers(config.queue, advocacy.unit_of_work, handled, trusted=config.trusted_publishers)
    # The bindings derive from the handlers: every key ends in this provider's id (events addressed to it alone).
    consumer = Consumer.from_settings(settings, config.queue, handled.bindings, handlers)
    log.info(
        "advocacy worker ready",
        extra={"provider_id": config.provider_id, "queue": config.queue, "auto_accept": config.auto_accept},
    )
    # One scheduler per worker process; on PostgreSQL several workers may run it (each clock fires once).
    scheduler = ClockScheduler(
        advocacy.unit_of_work,
        config.provider_id,
        continuity.wall_clock,
        interval=config.clock_tick_seconds,
        handover=continuity.handover,
        contacts=continuity.contacts,
    )
    # The retention table's step (contracts/retention.csv), on the same clock: each row is claimed once.
    step = advocacy_retention(advocacy.unit_of_work, config.provider_id)
    kept = retention_loop(step, settings.env, continuity.wall_clock.now)
    return {"consumer": consumer.run, "relay": advocacy.relay.run, "clocks": scheduler.run, "retention": kept.run}


def main() -> int:
    settings = settings_from_env()
    configure_logging("advocacy-worker")
    setup_tracing("advocacy-worker")
    return run_loops(build_loops(settings), health_at=health_address(settings))


if __name__ == "__main__":
    main_exit(main())
