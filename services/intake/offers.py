"""Offering a referral to providers, and what happens when a provider answers.

Each step writes its rows and its events (outbox) in the caller's transaction.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.intake import domain
from services.intake.models import Offer, Outbox, Provider, Referral
from shared.messaging.envelope import Event
from shared.outbox import add_event, utcnow

SOURCE = "/intake"


def referral_event(referral: Referral, type_: str, **data: Any) -> Event:
    base = {
        "referral_id": referral.id,
        "org_id": referral.org_id,
        "external_reference": referral.external_reference,
        "status": referral.status,
    }
    return Event(type=type_, source=SOURCE, subject=referral.id, data={**base, **data})


def _directory(session: Session) -> list[domain.ProviderEntry]:
    return [
        domain.ProviderEntry(
            id=p.id, regions=p.regions, serves=p.serves, accepting=p.accepting, capacity=p.capacity,
            languages=p.languages,
        )
        for p in session.scalars(select(Provider)).all()
    ]  # fmt: skip


def offer_to_next_provider(session: Session, referral: Referral, *, escalation_reason: str) -> Offer | None:
    """Offer the referral to the best eligible provider not yet offered it; escalate when none is left."""
    offered = session.scalars(select(Offer.provider_id).where(Offer.referral_id == referral.id)).all()
    provider = domain.choose_provider(
        _directory(session), region=referral.region, child=referral.is_child, already_offered=offered
    )
    if provider is None:
        referral.status = "escalated"
        add_event(session, Outbox, referral_event(referral, "referral.escalated", reason=escalation_reason))
        return None
    offer = Offer(id=str(uuid.uuid4()), referral_id=referral.id, provider_id=provider.id, status="pending",
                  offered_at=utcnow())  # fmt: skip
    session.add(offer)
    referral.status = "offered"
    summary = domain.offer_summary(referral.body, domain.Pathway(referral.pathway, referral.is_child, True))
    event = referral_event(
        referral,
        "referral.offered",
        offer_id=offer.id,
        provider_id=provider.id,
        offered_at=offer.offered_at.isoformat(),
        respond_by=None,
        **summary,
    )
    add_event(session, Outbox, event, routing_key=f"referral.offered.{provider.id}")
    return offer
