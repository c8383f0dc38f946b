"""intake's stores under the retention table (contracts/retention.csv; the step is shared.retention): the
anonymous Duty to Notify records, referrals never allocated (erased as on request), and the kit's inbox,
outbox, idempotent responses and access log."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from services.intake.erasure import erase_copy
from services.intake.models import DutyToNotifyRecord, IdempotencyKey, Inbox, Outbox, Referral
from services.intake.uow import SqlIntakeUnitOfWork
from shared.db import scrub_files
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
        Referral.erased_at.is_(None),  # not erased yet (on request or by an earlier run)
    )


def dtn_statistics(cutoff: datetime):
    # The record's only date is its month (YYYY-MM): a month wholly before the cutoff's month is past.
    return select(DutyToNotifyRecord.id).where(DutyToNotifyRecord.notified_month < cutoff.strftime("%Y-%m"))


def erase_referrals(uow: Any, ids: Sequence[Any], cutoff: datetime, now: datetime) -> None:
    """intake's erasure of its own copy (erasure.erase_copy, as on request), asking no recipient: no charity
    ever held a case, and the offer summaries sent and the webhooks have their own periods there. Stages
    nothing: nobody asked, and no agency hears of it."""
    for referral_id in ids:
        referral = uow.referrals.get(referral_id)
        if referral is not None:
            erase_copy(uow, referral, now)


def targets() -> list[Target]:
    return [
        Target("dtn_statistics", "duty_to_notify_records", dtn_statistics, deleting(DutyToNotifyRecord)),
        Target("referral_never_allocated", "referrals", never_allocated, erase_referrals),
        *platform_targets(Inbox, Outbox, IdempotencyKey),
    ]


def retention(sessions: sessionmaker, table: RetentionTable | None = None) -> Retention:
    """Over SQL units of work of their own: the step wakes no relay (it stages nothing); an erasure's commit
    is followed by scrubbing the database's files, as on request."""
    scrub = functools.partial(scrub_files, sessions.kw["bind"])
    return Retention("intake", functools.partial(SqlIntakeUnitOfWork, sessions), targets(), table, after_erasure=scrub)
