"""notifications' stores under the retention table (contracts/retention.csv; the step is shared.retention):
finished webhook deliveries, and the kit's inbox, outbox (once notifications has one), idempotent responses
and access log."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select

from services.notifications import models
from services.notifications.models import DELIVERED, FAILED, Delivery, IdempotencyKey, Inbox
from shared.retention import Retention, RetentionTable, Target, Unit, deleting, platform_targets


def finished_deliveries(cutoff: datetime):
    # A pending delivery is still being tried, whatever its age: only a finished one is past its period.
    return select(Delivery.id).where(Delivery.status.in_((DELIVERED, FAILED)), Delivery.created_at < cutoff)


def targets() -> list[Target]:
    outbox = getattr(models, "Outbox", None)  # notifications gains an outbox with its erasure.completed
    return [
        Target("delivery_log", "deliveries", finished_deliveries, deleting(Delivery)),
        *platform_targets(Inbox, outbox, IdempotencyKey),
    ]


def retention(units: Callable[[], Unit], table: RetentionTable | None = None) -> Retention:
    return Retention("notifications", units, targets(), table)
