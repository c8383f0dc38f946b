"""advocacy's stores under the retention table (contracts/retention.csv; the step is shared.retention): one
provider's closed cases (erased as on request, casework.erasure), the summaries of offers it declined, the
timelines of its closed cases, and the kit's inbox, outbox, idempotent responses and access log."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Text, cast, delete, select, update

from services.advocacy import domain
from services.advocacy.casework.erasure import erase_referral
from services.advocacy.models import Case, IdempotencyKey, Inbox, Offer, Outbox, TimelineEntry
from shared.retention import Retention, RetentionTable, Target, Unit, platform_targets

# An offer that became no case: declined here, or withdrawn by intake before an answer.
UNANSWERED = (domain.OFFER_DECLINED, domain.OFFER_WITHDRAWN)


def declined_offers(provider_id: str) -> Callable[[datetime], Any]:
    def candidates(cutoff: datetime):
        return select(Offer.id).where(
            Offer.provider_id == provider_id,
            Offer.status.in_(UNANSWERED),
            Offer.updated_at < cutoff,
            cast(Offer.summary, Text) != "{}",  # not anonymised yet
        )

    return candidates


def anonymise_offers(uow: Any, ids: Sequence[Any], cutoff: datetime, now: datetime) -> None:
    """Keep the offer's status and dates (statistics on routing), without its summary or decline note."""
    statement = update(Offer).where(Offer.id.in_(list(ids))).values(summary={}, decline_note_sealed=None)
    uow.session.execute(statement.execution_options(synchronize_session=False))


def closed_cases(provider_id: str) -> Callable[[datetime], Any]:
    def candidates(cutoff: datetime):
        return select(Case.id).where(
            Case.provider_id == provider_id,
            Case.status == domain.CASE_CLOSED,
            Case.closed_at < cutoff,
            Case.referral_sealed.is_not(None),  # its copy of the referral not erased yet
        )

    return candidates


def erase_cases(uow: Any, ids: Sequence[Any], cutoff: datetime, now: datetime) -> None:
    """The charity's erasure of each case's referral (casework.erasure, the same as on request), silently: no
    erasure.completed, nobody asked; no case.closed, it is closed already."""
    referrals = set(uow.session.scalars(select(Case.referral_id).where(Case.id.in_(list(ids)))))
    for referral_id in sorted(referrals):
        erase_referral(uow, referral_id, now)


def closed_timelines(provider_id: str) -> Callable[[datetime], Any]:
    def candidates(cutoff: datetime):
        closed = select(Case.offer_id).where(
            Case.provider_id == provider_id, Case.status == domain.CASE_CLOSED, Case.closed_at < cutoff
        )
        return select(TimelineEntry.seq).where(TimelineEntry.offer_id.in_(closed.scalar_subquery()))

    return candidates


def delete_timeline(uow: Any, ids: Sequence[Any], cutoff: datetime, now: datetime) -> None:
    statement = delete(TimelineEntry).where(TimelineEntry.seq.in_(list(ids)))
    uow.session.execute(statement.execution_options(synchronize_session=False))


def targets(provider_id: str) -> list[Target]:
    return [
        Target("closed_case", "cases", closed_cases(provider_id), erase_cases),
        Target("declined_offer_summary", "offers", declined_offers(provider_id), anonymise_offers),
        Target("timeline", "timeline_entries", closed_timelines(provider_id), delete_timeline),
        *platform_targets(Inbox, Outbox, IdempotencyKey),
    ]


def retention(units: Callable[[], Unit], provider_id: str, table: RetentionTable | None = None) -> Retention:
    return Retention("advocacy", units, targets(provider_id), table)
