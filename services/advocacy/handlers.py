"""One function per event advocacy consumes. Each runs inside the transaction EventHandlers opens together
with its inbox row, so a redelivered event has no second effect. Before it runs, the catalogue has checked
the event's routing key (addressed to this provider), publisher, source and payload, so `event.data` is the
typed payload of contracts.events. Raising means "retry later"; PermanentError means "this can never
succeed: park it".
"""

from __future__ import annotations

import logging

from opentelemetry import trace
from sqlalchemy.orm import Session

from contracts import events
from services.advocacy import domain
from services.advocacy.casework.cases import Casework
from services.advocacy.casework.intake_client import ReferralSource
from shared.messaging.catalogue import Subscriptions
from shared.messaging.envelope import Event
from shared.messaging.errors import PermanentError
from shared.telemetry import set_ids

log = logging.getLogger(__name__)
AUTO_ACCEPT_ACTOR = "auto-accept"


def subscriptions(continuity, intake: ReferralSource, *, auto_accept: bool) -> Subscriptions:
    """What a provider's instance handles, each addressed to it alone (its queue binds `<type>.<provider id>`)."""
    casework = continuity.casework
    return (
        Subscriptions(events.CATALOGUE, events.ADVOCACY, address=casework.provider_id)
        .on(events.ReferralOffered, lambda s, e: on_referral_offered(s, e, casework=casework, auto_accept=auto_accept))
        .on(events.AllocationConfirmed, lambda s, e: on_allocation_confirmed(s, e, casework=casework, intake=intake))
        .on(events.OfferWithdrawn, lambda s, e: on_offer_withdrawn(s, e, casework=casework))
        .on(events.OfferExpired, lambda s, e: on_offer_expired(s, e, casework=casework))
        .on(
            events.AllocationTransferred,
            lambda s, e: on_allocation_transferred(s, e, continuity=continuity, intake=intake),
        )
        .on(events.CaseHandover, lambda s, e: continuity.handover.receive(s, e))
        .complete()
    )


def on_referral_offered(session: Session, event: Event, *, casework: Casework, auto_accept: bool) -> None:
    _trace(event, casework)
    offer = casework.record_offer(session, event)
    log.info("offer received", extra={"offer_id": offer.id, "referral_id": offer.referral_id})
    if not auto_accept:
        return
    try:
        # The same path as a person's accept through the API, in this same transaction.
        case = casework.accept_offer(session, offer.id, actor=AUTO_ACCEPT_ACTOR, offer=offer)
    except domain.NoAdvocateAvailable:
        log.warning("auto-accept found no advocate with room; offer left pending", extra={"offer_id": offer.id})
        return
    log.info("offer auto-accepted", extra={"offer_id": offer.id, "case_id": case.id})


def on_allocation_confirmed(session: Session, event: Event, *, casework: Casework, intake: ReferralSource) -> None:
    """Intake confirmed our acceptance: fetch the referral (a logged disclosure) and open the case."""
    confirmed: events.AllocationConfirmed = event.data
    _trace(event, casework)
    try:
        case = casework.case(session, confirmed.case_id)
    except domain.CaseNotFound:
        raise PermanentError("allocation.confirmed names a case this provider never opened") from None
    if case.referral_id != confirmed.referral_id:
        raise PermanentError(f"case {case.id} is for another referral than allocation.confirmed names")
    if case.status != domain.CASE_OPENING:
        log.info(
            "allocation of a case no longer opening ignored",
            extra={"case_id": case.id, "status": case.status},
        )
        return
    # The HTTP call runs before the row lock is taken, so a slow intake does not hold the lock.
    referral = intake.fetch_referral(case.referral_id)
    session.refresh(case, with_for_update=True)  # lock, and re-read: a withdrawal may have closed it meanwhile
    if case.status != domain.CASE_OPENING:
        log.info("case changed while the referral was fetched; ignored", extra={"case_id": case.id})
        return
    casework.open_case(session, case, referral, actor=event.source)
    log.info("case opened", extra={"case_id": case.id, "referral_id": case.referral_id})


def on_offer_withdrawn(session: Session, event: Event, *, casework: Casework) -> None:
    """The referrer withdrew the referral: our pending offer lapses, our case closes."""
    withdrawn: events.OfferWithdrawn = event.data
    found = casework.withdraw_referral(session, withdrawn.referral_id, actor=event.source)
    if found:
        _trace(event, casework)
        log.info("referral withdrawn", extra={"referral_id": withdrawn.referral_id, "offers": found})


def on_offer_expired(session: Session, event: Event, *, casework: Casework) -> None:
    """Intake's deadline for our answer passed."""
    expired: events.OfferExpired = event.data
    if casework.expire_offer(session, expired.offer_id, actor=event.source):
        _trace(event, casework)
        log.info("offer expired", extra={"offer_id": expired.offer_id})


def on_allocation_transferred(session: Session, event: Event, *, continuity, intake: ReferralSource) -> None:
    """Intake moved the allocation to us after another provider handed the case over: fetch the referral, so
    the person's details follow them without their retelling their story, and open the case."""
    moved: events.AllocationTransferred = event.data
    casework = continuity.casework
    case = casework.handed_over_case(session, moved.referral_id)
    if case is None:  # the case.handover itself has not arrived yet (queues keep no order across publishers)
        raise LookupError(f"no handed-over case yet for referral {moved.referral_id}")
    if case.referral is not None:
        return
    referral = intake.fetch_referral(case.referral_id)
    session.refresh(case, with_for_update=True)
    if case.referral is not None or case.status != domain.CASE_OPENING:
        return
    casework.attach_referral(session, case, referral, actor=event.source)
    # What derives from the person's details (a child's 18th birthday) did not travel: plan it from the referral.
    continuity.nrm.plan_from_referral(session, case, referral)
    _trace(event, casework)
    log.info("handed-over case has its referral", extra={"case_id": case.id})


def _trace(event: Event, casework: Casework) -> None:
    set_ids(trace.get_current_span(), referral=event.subject, provider=casework.provider_id)
