"""What intake does with the events it consumes: a provider's answer to an offer, a provider's capacity, a
provider's handover of a case.

Each comes from a charity's own instance. Before any of these runs, the catalogue has checked that the
broker-validated publisher (`user_id`) is the provider the event speaks for (shared.messaging.catalogue);
here intake checks that the provider holds what it speaks about: the offer, or the referral's allocation.
"""

from __future__ import annotations

import logging

from contracts import events
from services.intake import recipients
from services.intake.consent import on_case_consent_recorded
from services.intake.erasure import on_erasure_completed
from services.intake.models import Offer, Referral
from services.intake.offering import Offering
from services.intake.uow import IntakeUnitOfWork
from shared.clock import utcnow
from shared.messaging.catalogue import Subscriptions
from shared.messaging.envelope import Event
from shared.messaging.errors import PermanentError

log = logging.getLogger(__name__)


def _offer_answered(
    uow: IntakeUnitOfWork, answer: events.OfferAccepted | events.OfferDeclined
) -> tuple[Offer, Referral] | None:
    # Locks in one order everywhere: the referral (the event's subject) first, then the offer.
    referral = uow.referrals.get(answer.referral_id, lock=True)
    offer = uow.offers.get(answer.offer_id, lock=True) if referral else None
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


def on_offer_accepted(uow: IntakeUnitOfWork, event: Event) -> None:
    accepted: events.OfferAccepted = event.data
    answered = _offer_answered(uow, accepted)
    if answered is None:
        return
    offer, referral = answered
    advocate = {"name": accepted.advocate.name, "email": accepted.advocate.email}
    referral.accept(offer, case_id=accepted.case_id, advocate=advocate, at=utcnow())


def on_offer_declined(uow: IntakeUnitOfWork, event: Event, *, offering: Offering) -> None:
    declined: events.OfferDeclined = event.data
    answered = _offer_answered(uow, declined)
    if answered is None:
        return
    offer, referral = answered
    referral.decline(offer, declined.reason, utcnow())
    offering.offer_next(uow, referral, escalation_reason="none_accepted")


def on_capacity_changed(uow: IntakeUnitOfWork, event: Event) -> None:
    """The directory follows what each provider's own instance reports; an older report never wins."""
    report: events.ProviderCapacityChanged = event.data
    provider = uow.providers.get(report.provider_id, lock=True)
    if provider is None:
        log.info("capacity of a provider not in the directory ignored", extra={"provider_id": report.provider_id})
        return
    reported_at = event.occurred_at()
    if provider.capacity_reported_at and provider.capacity_reported_at >= reported_at:
        return
    provider.capacity = report.capacity
    provider.capacity_reported_at = reported_at


def on_case_handed_over(uow: IntakeUnitOfWork, event: Event) -> None:
    """A provider handed its case over to another provider (a `provider_handover` transition): the allocation
    moves with it, so the receiving provider may read the referral and nobody asks the survivor again."""
    handover: events.CaseHandedOver = event.data
    sender, receiver = handover.from_provider_id, handover.to_provider_id
    referral = uow.referrals.get(handover.referral_id, lock=True)
    if referral is None or uow.providers.get(receiver) is None:
        raise PermanentError("handover names an unknown referral or receiving provider")
    if referral.provider_id != sender:
        raise PermanentError("handover of a referral the sender does not hold")
    if referral.status != "allocated" or referral.erased_at is not None:
        log.info("handover of a referral no longer allocated, or erased, ignored", extra={"referral_id": referral.id})
        return
    referral.transfer(receiver, utcnow())
    recipients.record(uow, referral.id, receiver, recipients.PROVIDER, recipients.HANDOVER)


def subscriptions(offering: Offering) -> Subscriptions:
    """Each event intake consumes, with its handler `(uow, event)`; the queue's bindings follow from these."""
    return (
        Subscriptions(events.CATALOGUE, events.INTAKE_SERVICE)
        .on(events.OfferAccepted, on_offer_accepted)
        .on(events.OfferDeclined, lambda uow, event: on_offer_declined(uow, event, offering=offering))
        .on(events.ProviderCapacityChanged, on_capacity_changed)
        .on(events.CaseHandedOver, on_case_handed_over)
        .on(events.CaseConsentRecorded, on_case_consent_recorded)
        .on(events.ErasureCompleted, on_erasure_completed)
        .complete()
    )
