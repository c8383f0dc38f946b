"""What every continuity record writes besides its rows: a timeline entry (who did what, when) and, where
other parties must hear of it, an event staged in the same transaction (the outbox).

Events carry ids, kinds and dates only (their shapes are in contracts.events): never names, dates of birth,
contact details or narrative. notifications knows whose referral it is from intake's own events.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from contracts import events
from services.advocacy.models import Case, Outbox, TimelineEntry
from shared.outbox import add_event


def note(session: Session, case: Case, kind: str, actor: str, detail: str, at: datetime) -> None:
    session.add(TimelineEntry(offer_id=case.offer_id, at=at, kind=kind, actor=actor, detail=detail[:500]))


CaseEvent = TypeVar("CaseEvent", bound=events.CaseNews)


def stage(session: Session, case: Case, event_type: type[CaseEvent], /, **data: Any) -> CaseEvent:
    """Stage an event of `event_type` about `case`: its referral, the case and this provider, and `data`."""
    payload = event_type(referral_id=case.referral_id, case_id=case.id, provider_id=case.provider_id, **data)
    add_event(session, Outbox, payload)
    return payload
