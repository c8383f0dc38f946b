"""One function per event advocacy consumes. Each runs inside the unit of work EventHandlers opens together
with its inbox row, so a redelivered event has no second effect. Before it runs, the catalogue has checked
the event's routing key (addressed to this provider), publisher, source and payload, so `event.data` is the
typed payload of contracts.events. Raising means "retry later"; PermanentError means "this can never
succeed: park it".
"""

from __future__ import annotations

import logging

from opentelemetry import trace

from contracts import events
from services.advocacy import domain
from services.advocacy.bootstrap import Continuity
from services.advocacy.casework.cases import Casework
from services.advocacy.casework.erasure import erase_referral
from services.advocacy.casework.intake_client import ReferralSource
from services.advocacy.casework.rectification import on_rectified
from services.advocacy.uow import AdvocacyUnitOfWork
from shared.clock import utcnow
from shared.inbox import alone
from shared.messaging.catalogue import Subscriptions
from shared.messaging.envelope import Event
from shared.messaging.errors import PermanentError
from shared.telemetry import set_ids

log = logging.getLogger(__name__)


def subscriptions(continuity: Continuity, intake: ReferralSource, *, auto_accept: bool) -> Subscriptions:
    """What a provider's instance handles, each addressed to it alone (its queue binds `<type>.<provider id>`)."""
    casework = continuity.casework
    return (
        Subscriptions(events.CATALOGUE, events.ADVOCACY, address=casework.provider_id)
        .on(events.ReferralOffered, lambda u, e: on_referral_offered(u, e, casework=casework, auto_accept=auto_accept))
        # These three fetch the referral from intake: each in a transaction of its own, never in a consumer's
        # batch, whose row locks it would hold while it waits (shared.inbox.alone).
        .on(
            events.AllocationConfirmed,
            alone(lambda u, e: on_allocation_confirmed(u, e, casework=casework, intake=intake)),
        )
        .on(events.OfferWithdrawn, lambda u, e: on_offer_withdrawn(u, e, casework=casework))
        .on(events.OfferExpired, lambda u, e: on_offer_expired(u, e, casework=casework))
        .on(
            events.AllocationTransferred,
            alone(lambda u, e: on_allocation_transferred(u, e, continuity=continuity, intake=intake)),
        )
        .on(events.CaseHandover, lambda u, e: on_case_handover(u, e, continuity=continuity))
        .on(events.CaseHandoverOffered, lambda u, e: on_case_handover_offered(u, e, continuity=continuity))
        .on(events.CaseHandoverAccepted, lambda u, e: on_case_handover_accepted(u, e, continuity=continuity))
        .on(events.CaseHandoverDeclined, lambda u, e: on_case_handover_declined(u, e, continuity=continuity))
        .on(events.ConsentWithdrawn, lambda u, e: on_consent_withdrawn(u, e, continuity=continuity))
        .on(events.ReferralErasureRequested, lambda u, e: on_erasure_requested(u, e, casework=casework))
        .on(
            events.ReferralRectified,
            alone(lambda u, e: on_referral_rectified(u, e, casework=casework, intake=intake)),
        )
        .complete()
    )


def on_referral_offered(uow: AdvocacyUnitOfWork, event: Event, *, casework: Casework, auto_accept: bool) -> None:
    _trace(event, casework)
    # With auto-accept, the same path as a person's accept through the API, in this same transaction.
    offer, case = casework.receive_offer(uow, event, auto_accept=auto_accept)
    log.info("offer received", extra={"offer_id": offer.id, "referral_id": offer.referral_id})
    if case is not None:
        log.info("offer auto-accepted", extra={"offer_id": offer.id, "case_id": case.id})
    elif auto_accept:
        log.warning("auto-accept found no advocate with room; offer left pending", extra={"offer_id": offer.id})


def on_allocation_confirmed(
    uow: AdvocacyUnitOfWork, event: Event, *, casework: Casework, intake: ReferralSource
) -> None:
    """Intake confirmed our acceptance: fetch the referral (a logged disclosure) and open the case."""
    confirmed: events.AllocationConfirmed = event.data
    _trace(event, casework)
    try:
        case = casework.case(uow, confirmed.case_id)
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
    uow.cases.lock(case)  # lock, and re-read: a withdrawal may have closed it meanwhile
    if case.status != domain.CASE_OPENING:
        log.info("case changed while the referral was fetched; ignored", extra={"case_id": case.id})
        return
    casework.open_case(uow, case, referral, actor=event.source)
    log.info("case opened", extra={"case_id": case.id, "referral_id": case.referral_id})


def on_offer_withdrawn(uow: AdvocacyUnitOfWork, event: Event, *, casework: Casework) -> None:
    """The referrer withdrew the referral: our pending offer lapses, our case closes."""
    withdrawn: events.OfferWithdrawn = event.data
    found = casework.withdraw_referral(uow, withdrawn.referral_id, actor=event.source)
    if found:
        _trace(event, casework)
        log.info("referral withdrawn", extra={"referral_id": withdrawn.referral_id, "offers": found})


def on_offer_expired(uow: AdvocacyUnitOfWork, event: Event, *, casework: Casework) -> None:
    """Intake's deadline for our answer passed."""
    expired: events.OfferExpired = event.data
    if casework.expire_offer(uow, expired.offer_id, actor=event.source):
        _trace(event, casework)
        log.info("offer expired", extra={"offer_id": expired.offer_id})


def on_allocation_transferred(
    uow: AdvocacyUnitOfWork, event: Event, *, continuity: Continuity, intake: ReferralSource
) -> None:
    """Intake moved the allocation to us after another provider handed the case over: fetch the referral, so
    the person's details follow them without their retelling their story, and open the case."""
    moved: events.AllocationTransferred = event.data
    casework = continuity.casework
    case = uow.cases.handed_over(moved.referral_id)
    if case is None:  # the case.handover itself has not arrived yet (queues keep no order across publishers)
        raise LookupError(f"no handed-over case yet for referral {moved.referral_id}")
    if case.referral is not None:
        return
    referral = intake.fetch_referral(case.referral_id)
    uow.cases.lock(case)
    if case.referral is not None or case.status != domain.CASE_OPENING:
        return
    casework.attach_referral(uow, case, referral, actor=event.source)
    # What derives from the person's details (a child's 18th birthday) did not travel: plan it from the referral.
    continuity.nrm.plan_from_referral(uow, case, referral)
    _trace(event, casework)
    log.info("handed-over case has its referral", extra={"case_id": case.id})


def on_case_handover(uow: AdvocacyUnitOfWork, event: Event, *, continuity: Continuity) -> None:
    """Another provider handed over a case we accepted: it arrives `opening`, with its timeline and clocks."""
    case = continuity.handover.receive(uow, event)
    _trace(event, continuity.casework)
    if case is not None:
        log.info("handed-over case received", extra={"case_id": case.id, "referral_id": case.referral_id})


def on_case_handover_offered(uow: AdvocacyUnitOfWork, event: Event, *, continuity: Continuity) -> None:
    """Another provider offers us a case: it waits in GET /v1/handovers for our answer."""
    handover = continuity.handover.record_offer(uow, event)
    _trace(event, continuity.casework)
    log.info("handover offered", extra={"handover_id": handover.id, "referral_id": handover.referral_id})


def on_case_handover_accepted(uow: AdvocacyUnitOfWork, event: Event, *, continuity: Continuity) -> None:
    """The receiving provider accepted our handover: the transition completes and the case goes to it."""
    answered = continuity.handover.answered(uow, event.data)
    if answered is None:
        return
    case, transition = answered
    continuity.transitions.complete_handover(uow, case, transition, actor=event.source)
    _trace(event, continuity.casework)
    log.info("handover accepted; case sent", extra={"case_id": case.id, "transition_id": transition.id})


def on_case_handover_declined(uow: AdvocacyUnitOfWork, event: Event, *, continuity: Continuity) -> None:
    """The receiving provider declined our handover: the case stays here with its advocate."""
    answered = continuity.handover.answered(uow, event.data)
    if answered is None:
        return
    case, transition = answered
    continuity.handover.declined(uow, case, transition, event.data, actor=event.source)
    _trace(event, continuity.casework)
    log.info("handover declined; case stays", extra={"case_id": case.id, "transition_id": transition.id})


def on_consent_withdrawn(uow: AdvocacyUnitOfWork, event: Event, *, continuity: Continuity) -> None:
    """intake: the person withdrew their advocacy consent. The case closes with `consent_withdrawn`."""
    case = continuity.consent.on_withdrawn(uow, event)
    if case is not None:
        _trace(event, continuity.casework)
        log.info("case closed: consent withdrawn", extra={"case_id": case.id, "referral_id": case.referral_id})


def on_erasure_requested(uow: AdvocacyUnitOfWork, event: Event, *, casework: Casework) -> None:
    """intake: erase what this provider holds about the referral (casework.erasure), and say so, with what it
    keeps, in this same transaction. A repeat request answers again; a referral never seen here is confirmed."""
    requested: events.ReferralErasureRequested = event.data
    live = any(c.status in domain.LIVE_CASE_STATUSES for c in uow.erasures.cases_of(requested.referral_id))
    now = utcnow()
    kept = erase_referral(uow, requested.referral_id, now)
    if live:  # an advocate's place is free again: capacity is news about the provider, not the person
        casework.announce_capacity(uow)
    uow.stage(
        events.ErasureCompleted(
            referral_id=requested.referral_id,
            erasure_id=requested.erasure_id,
            recipient=events.provider_recipient(casework.provider_id),
            erased_at=now,
            provider_id=casework.provider_id,
            kept=kept,
        )
    )
    _trace(event, casework)
    log.info("referral erased", extra={"referral_id": requested.referral_id, "erasure_id": requested.erasure_id})


def on_referral_rectified(uow: AdvocacyUnitOfWork, event: Event, *, casework: Casework, intake: ReferralSource) -> None:
    """The referrer corrected the referral at intake: fetch it again and replace our copy (casework.rectification)."""
    corrected = on_rectified(uow, event, casework=casework, intake=intake)
    if corrected:
        _trace(event, casework)
        log.info("referral rectified", extra={"referral_id": event.subject, "cases": len(corrected)})


def _trace(event: Event, casework: Casework) -> None:
    set_ids(trace.get_current_span(), referral=event.subject, provider=casework.provider_id)
