"""What every casework and continuity change writes besides its rows: a timeline entry (who did what, when)
and, where other parties must hear of it, an event staged in the same unit of work.

Events carry ids, kinds and dates only (their shapes are in contracts.events): never names, dates of birth,
contact details or narrative. notifications knows whose referral it is from intake's own events.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from contracts import events
from services.advocacy.models import Case, TimelineEntry
from services.advocacy.uow import AdvocacyUnitOfWork

DETAIL_LENGTH = 500  # the column's width; a detail holds ids and codes


def note(uow: AdvocacyUnitOfWork, offer_id: str, kind: str, actor: str, detail: str, at: datetime) -> None:
    """A timeline entry of the offer and the case it became (a case's timeline is its offer's)."""
    uow.timeline.add(TimelineEntry(offer_id=offer_id, at=at, kind=kind, actor=actor, detail=detail[:DETAIL_LENGTH]))


CaseEvent = TypeVar("CaseEvent", bound=events.CaseNews)


def stage(uow: AdvocacyUnitOfWork, case: Case, event_type: type[CaseEvent], /, **data: Any) -> CaseEvent:
    """Stage an event of `event_type` about `case`: its referral, the case, this provider, the child's local
    authority (None for an adult), and `data`."""
    payload = event_type(
        referral_id=case.referral_id,
        case_id=case.id,
        provider_id=case.provider_id,
        local_authority_org_id=case.local_authority_org_id,
        **data,
    )
    uow.stage(payload)
    return payload
