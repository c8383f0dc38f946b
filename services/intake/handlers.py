"""What intake does with the events it consumes: a provider's answer to an offer."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from services.intake.models import Offer, Outbox, Referral
from services.intake.offers import offer_to_next_provider, referral_event
from shared.messaging.consumer import PermanentError
from shared.messaging.envelope import Event
from shared.outbox import add_event, utcnow

log = logging.getLogger(__name__)


def _offer_answered(session: Session, event: Event) -> tuple[Offer, Referral] | None:
    offer = session.get(Offer, event.data.get("offer_id"), with_for_update=True)
    if offer is None or offer.referral_id != event.subject or offer.provider_id != event.data.get("provider_id"):
        raise PermanentError("answer names an offer that was not made to that provider")
    if offer.status != "pending":
        # Withdrawn meanwhile, or already answered: the record stands; nothing to do.
        log.info("answer to a closed offer ignored", extra={"offer_id": offer.id, "offer_status": offer.status})
        return None
    return offer, session.get(Referral, offer.referral_id, with_for_update=True)


def on_offer_accepted(session: Session, event: Event) -> None:
    answered = _offer_answered(session, event)
    if answered is None:
        return
    offer, referral = answered
    now = utcnow()
    offer.status, offer.responded_at = "accepted", now
    referral.status = "allocated"
    referral.provider_id = offer.provider_id
    referral.case_id = event.data.get("case_id")
    referral.advocate = event.data.get("advocate")
    referral.accepted_at = now
    referral.updated_at = now
    add_event(
        session,
        Outbox,
        referral_event(referral, "referral.allocated", provider_id=offer.provider_id, case_id=referral.case_id),
    )


def on_offer_declined(session: Session, event: Event) -> None:
    answered = _offer_answered(session, event)
    if answered is None:
        return
    offer, referral = answered
    offer.status, offer.responded_at = "declined", utcnow()
    offer.decline_reason = event.data.get("reason")
    referral.updated_at = utcnow()
    offer_to_next_provider(session, referral, escalation_reason="all_declined")


HANDLERS = {"offer.accepted": on_offer_accepted, "offer.declined": on_offer_declined}
