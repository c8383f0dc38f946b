"""What intake does with the events it consumes: a provider's answer to an offer, a provider's capacity, a
provider's handover of a case.

Each comes from a charity's own instance. Before any of these runs, the catalogue has checked that the
broker-validated publisher (`user_id`) is the provider the event speaks for (shared.messaging.catalogue);
here intake checks that the provider holds what it speaks about: the offer, or the referral's allocation.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from contracts import events
from services.intake.models import Offer, Outbox, Provider, Referral
from services.intake.offers import Router, referral_news
from shared.clock import utcnow
from shared.messaging.catalogue import Subscriptions
from shared.messaging.envelope import Event
from shared.messaging.errors import PermanentError
from shared.outbox import add_event

log = logging.getLogger(__name__)


def _offer_answered(
    session: Session, answer: events.OfferAccepted | events.OfferDeclined
) -> tuple[Offer, Referral] | None:
    # Locks in one order everywhere: the referral (the event's subject) first, then the offer.
    referral = session.get(Referral, answer.referral_id, with_for_update=True)
    offer = session.get(Offer, answer.offer_id, with_for_update=True) if referral else None
    if (
        referral is None
        or offer is None
        or offer.referral_id != answer.referral_id
        or offer.provider_id != answer.provider_id
    ):
        raise PermanentError("answer names an offer that was not made to that provider")
    if offer.status != "pending":
        # Withdrawn meanwhile, or already answered: the record stands; nothing to do.
        log.info("answer to a closed offer ignored", extra={"offer_id": offer.id, "offer_status": offer.status})
        return None
    return offer, referral


def on_offer_accepted(session: Session, event: Event) -> None:
    accepted: events.OfferAccepted = event.data
    answered = _offer_answered(session, accepted)
    if answered is None:
        return
    offer, referral = answered
    now = utcnow()
    offer.status, offer.responded_at = "accepted", now
    referral.move_to("allocated", now)
    referral.provider_id = offer.provider_id
    referral.case_id = accepted.case_id
    referral.advocate = {"name": accepted.advocate.name, "email": accepted.advocate.email}
    referral.accepted_at = now
    # The referrer hears of it; the provider is told to open its case (addressed to it alone).
    allocated = referral_news(
        events.ReferralAllocated, referral, provider_id=offer.provider_id, case_id=accepted.case_id
    )
    add_event(session, Outbox, allocated)
    confirmed = events.AllocationConfirmed(
        referral_id=referral.id, offer_id=offer.id, provider_id=offer.provider_id, case_id=accepted.case_id
    )
    add_event(session, Outbox, confirmed)


def on_offer_declined(session: Session, event: Event, *, router: Router) -> None:
    declined: events.OfferDeclined = event.data
    answered = _offer_answered(session, declined)
    if answered is None:
        return
    offer, referral = answered
    offer.status, offer.responded_at = "declined", utcnow()
    offer.decline_reason = declined.reason
    referral.updated_at = utcnow()
    router.offer_next(session, referral, escalation_reason="none_accepted")


def on_capacity_changed(session: Session, event: Event) -> None:
    """The directory follows what each provider's own instance reports; an older report never wins."""
    report: events.ProviderCapacityChanged = event.data
    provider = session.get(Provider, report.provider_id, with_for_update=True)
    if provider is None:
        log.info("capacity of a provider not in the directory ignored", extra={"provider_id": report.provider_id})
        return
    reported_at = event.occurred_at()
    if provider.capacity_reported_at and provider.capacity_reported_at >= reported_at:
        return
    provider.capacity = report.capacity
    provider.capacity_reported_at = reported_at


def on_case_handed_over(session: Session, event: Event) -> None:
    """A provider handed its case over to another provider (a `provider_handover` transition): the allocation
    moves with it, so the receiving provider may read the referral and nobody asks the survivor again."""
    handover: events.CaseHandedOver = event.data
    sender, receiver = handover.from_provider_id, handover.to_provider_id
    referral = session.get(Referral, handover.referral_id, with_for_update=True)
    if referral is None or session.get(Provider, receiver) is None:
        raise PermanentError("handover names an unknown referral or receiving provider")
    if referral.provider_id != sender:
        raise PermanentError("handover of a referral the sender does not hold")
    if referral.status != "allocated":
        log.info("handover of a referral no longer allocated ignored", extra={"referral_id": referral.id})
        return
    referral.provider_id, referral.case_id, referral.advocate = receiver, None, None
    referral.updated_at = utcnow()
    transferred = referral_news(events.ReferralTransferred, referral, provider_id=receiver, from_provider_id=sender)
    add_event(session, Outbox, transferred)
    moved = events.AllocationTransferred(referral_id=referral.id, provider_id=receiver, from_provider_id=sender)
    add_event(session, Outbox, moved)


def subscriptions(router: Router) -> Subscriptions:
    return (
        Subscriptions(events.CATALOGUE, events.INTAKE_SERVICE)
        .on(events.OfferAccepted, on_offer_accepted)
        .on(events.OfferDeclined, lambda session, event: on_offer_declined(session, event, router=router))
        .on(events.ProviderCapacityChanged, on_capacity_changed)
        .on(events.CaseHandedOver, on_case_handed_over)
        .complete()
    )
