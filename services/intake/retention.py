"""intake's stores under the retention table (contracts/retention.csv; the step is shared.retention): the
anonymous Duty to Notify records, referrals never allocated, and the kit's inbox, outbox, idempotent
responses and access log."""

from __future__ import annotations

import functools
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from services.intake.models import DutyToNotifyRecord, IdempotencyKey, Inbox, Outbox, Referral
from services.intake.uow import SqlIntakeUnitOfWork
from shared.retention import Retention, RetentionTable, Target, deleting, platform_targets

# A referral no charity accepted that is no longer being offered: withdrawn, recorded (an adult without NRM
# consent, never offered) or escalated and left so.
NEVER_ALLOCATED = ("withdrawn", "recorded", "escalated")


def never_allocated(cutoff: datetime):
    return select(Referral.id).where(
        Referral.status.in_(NEVER_ALLOCATED),
        Referral.accepted_at.is_(None),
        Referral.provider_id.is_(None),
        Referral.updated_at < cutoff,
    )


def dtn_statistics(cutoff: datetime):
    # The record's only date is its month (YYYY-MM): a month wholly before the cutoff's month is past.
    return select(DutyToNotifyRecord.id).where(DutyToNotifyRecord.notified_month < cutoff.strftime("%Y-%m"))


def targets() -> list[Target]:
    return [
        Target("dtn_statistics", "duty_to_notify_records", dtn_statistics, deleting(DutyToNotifyRecord)),
        *platform_targets(Inbox, Outbox, IdempotencyKey),
    ]


def retention(sessions: sessionmaker, table: RetentionTable | None = None) -> Retention:
    """Over SQL units of work of their own: the step wakes no relay (it stages nothing)."""
    return Retention("intake", functools.partial(SqlIntakeUnitOfWork, sessions), targets(), table)
