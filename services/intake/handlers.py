"""What intake does with the events it consumes: a provider's answer to an offer, a provider's capacity.

Each comes from a charity's own instance. RabbitMQ validates the publisher (`user_id`), so an instance that
speaks for a provider other than its own is refused and its message parked (domain.may_speak_for).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy.orm import Session

from services.intake import domain
from services.intake.models import Offer, Outbox, Provider, Referral
from services.intake.offers import Router, referral_event
from shared.inbox import Handler
from shared.messaging.envelope import Event
from shared.messaging.errors import PermanentError
from shared.outbox import add_event, utcnow

log = logging.getLogger(__name__)


def _check_publisher(event: Event, trusted: Iterable[str]) -> str:
    provider_id = str(event.data.get("provider_id") or "")
    if not domain.may_speak_for(event.publisher, provider_id, trusted):
        raise PermanentError(f"publisher {event.publisher!r} may not speak for provider {provider_id!r}")
    return provider_id


def _offer_answered(session: Session, event: Event, trusted: Iterable[str]) -> tuple[Offer, Referral] | None:
    provider_id = _check_publisher(event, trusted)
    # Locks in one order everywhere: the referral (the event's subject) first, then the offer.
    offer_id = event.data.get("offer_id")
    referral = session.get(Referral, event.subject, with_for_update=True) if event.subject else None
    offer = session.get(Offer, offer_id, with_for_update=True) if referral and isinstance(offer_id, str) else None
    if offer is None or offer.referral_id != event.subject or offer.provider_id != provider_id:
        raise PermanentError("answer names an offer that was not made to that provider")
    if offer.status != "pending":
        # Withdrawn meanwhile, or already answered: the record stands; nothing to do.
        log.info("answer to a closed offer ignored", extra={"offer_id": offer.id, "offer_status": offer.status})
        return None
    return offer, referral


def on_offer_accepted(session: Session, event: Event, *, trusted: Iterable[str]) -> None:
    answered = _offer_answered(session, event, trusted)
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


def on_offer_declined(session: Session, event: Event, *, router: Router, trusted: Iterable[str]) -> None:
    answered = _offer_answered(session, event, trusted)
    if answered is None:
        return
    offer, referral = answered
    offer.status, offer.responded_at = "declined", utcnow()
    offer.decline_reason = event.data.get("reason")
    referral.updated_at = utcnow()
    router.offer_next(session, referral, escalation_reason="none_accepted")


def on_capacity_changed(session: Session, event: Event, *, trusted: Iterable[str]) -> None:
    """The directory follows what each provider's own instance reports; an older report never wins."""
    provider_id = _check_publisher(event, trusted)
    provider = session.get(Provider, provider_id, with_for_update=True)
    if provider is None:
        log.info("capacity of a provider not in the directory ignored", extra={"provider_id": provider_id})
        return
    reported_at = datetime.fromisoformat(event.time)
    if provider.capacity_reported_at and provider.capacity_reported_at >= reported_at:
        return
    provider.capacity = max(0, int(event.data.get("capacity", 0)))
    provider.capacity_reported_at = reported_at


def on_case_handed_over(session: Session, event: Event, *, trusted: Iterable[str]) -> None:
    """A provider handed its case over to another provider (a `provider_handover` transition): the allocation
    moves with it, so the receiving provider may read the referral and nobody asks the survivor again."""
    sender = str(event.data.get("from_provider_id") or "")
    receiver = str(event.data.get("to_provider_id") or "")
    if not domain.may_speak_for(event.publisher, sender, trusted):
        raise PermanentError(f"publisher {event.publisher!r} may not speak for provider {sender!r}")
    referral = session.get(Referral, event.subject, with_for_update=True)
    if referral is None or session.get(Provider, receiver) is None:
        raise PermanentError("handover names an unknown referral or receiving provider")
    if referral.status != "allocated" or referral.provider_id != sender:
        log.info("handover of a referral not allocated to its sender ignored", extra={"referral_id": referral.id})
        return
    referral.provider_id, referral.case_id, referral.advocate = receiver, None, None
    referral.updated_at = utcnow()
    add_event(
        session,
        Outbox,
        referral_event(referral, "referral.transferred", provider_id=receiver, from_provider_id=sender),
    )


def make_handlers(router: Router, trusted: Iterable[str]) -> dict[str, Handler]:
    trusted = frozenset(trusted)
    return {
        "offer.accepted": functools.partial(on_offer_accepted, trusted=trusted),
        "offer.declined": functools.partial(on_offer_declined, router=router, trusted=trusted),
        "provider.capacity_changed": functools.partial(on_capacity_changed, trusted=trusted),
        "case.handed_over": functools.partial(on_case_handed_over, trusted=trusted),
    }
