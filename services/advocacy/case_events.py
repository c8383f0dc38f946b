"""What every continuity record writes besides its rows: a timeline entry (who did what, when) and, where
other parties must hear of it, an event staged in the same transaction (the outbox).

Events carry ids, kinds and dates only, plus the referring `org_id` and `external_reference` the case knows,
so notifications can route them: never names, dates of birth, contact details or narrative.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from services.advocacy.models import Case, Outbox, TimelineEntry
from shared.messaging.envelope import Event
from shared.outbox import add_event


def note(session: Session, case: Case, kind: str, actor: str, detail: str, at: datetime) -> None:
    session.add(TimelineEntry(offer_id=case.offer_id, at=at, kind=kind, actor=actor, detail=detail[:500]))


def stage(session: Session, case: Case, event_type: str, data: dict[str, Any], *, routing_key: str | None = None):
    summary = case.offer.summary or {}
    payload = {
        "referral_id": case.referral_id,
        "case_id": case.id,
        "provider_id": case.provider_id,
        "org_id": summary.get("org_id"),
        "external_reference": summary.get("external_reference"),
        **data,
    }
    event = Event(type=event_type, source=f"/advocacy/{case.provider_id}", subject=case.referral_id, data=payload)
    add_event(session, Outbox, event, routing_key=routing_key)
    return event
