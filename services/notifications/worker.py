"""`python -m services.notifications.worker`: consume referral events, queue and send their webhooks.

The consumer of queue `notifications` (turns events into pending deliveries, in one transaction with the
inbox row), the webhook dispatcher (sends them) and the retention step (contracts/retention.csv).
The outbox relay publishes notifications' one event, erasure.completed (issue 14).
"""

from __future__ import annotations

from services.notifications.bootstrap import QUEUE, bootstrap
from services.notifications.retention import retention as notifications_retention
from shared.clock import utcnow
from shared.config import Settings
from shared.health_server import health_address
from shared.logs import configure_logging
from shared.messaging.partitions import consumer_loops
from shared.messaging.worker import Loop, main_exit, run_loops
from shared.retention import retention_loop
from shared.telemetry import setup_tracing


def build_loops(settings: Settings, *, queue: str = QUEUE) -> dict[str, Loop]:
    notifications = bootstrap(settings, queue=queue, relay=True)
    assert notifications.relay is not None  # asked for above
    handlers = notifications.handlers
    # The queue binds exactly the event types handled: the webhook types.
    # `consumer`, or with AMQP_PARTITIONS a consumer per partition, this worker's share first.
    consumers = consumer_loops(settings, queue, handlers.subscriptions.bindings, handlers)
    # The retention table step (contracts/retention.csv), in every worker at once: each row is claimed once.
    kept = retention_loop(notifications_retention(notifications.units), settings.env, utcnow)
    return {
        **consumers,
        "dispatcher": notifications.dispatcher.run,
        "relay": notifications.relay.run,
        "retention": kept.run,
    }


def main() -> int:
    settings = Settings.from_env("notifications")
    configure_logging("notifications")
    setup_tracing("notifications-worker")
    return run_loops(build_loops(settings), health_at=health_address(settings))


if __name__ == "__main__":
    main_exit(main())
