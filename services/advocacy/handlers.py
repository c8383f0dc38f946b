"""One function per event advocacy consumes. Each runs inside the transaction EventHandlers opens together
with its inbox row, so a redelivered event has no second effect. Raising means "retry later";
PermanentError means "this can never succeed: park it".
"""

from __future__ import annotations

import functools
import logging
from datetime import datetime

from opentelemetry import trace
from sqlalchemy.orm import Session

from services.advocacy import domain
from services.advocacy.casework import Casework
from services.advocacy.intake_client import ReferralSource
from shared.inbox import Handler
from shared.messaging.envelope import Event
from shared.messaging.errors import PermanentError
from shared.telemetry import set_ids

log = logging.getLogger(__name__)
AUTO_ACCEPT_ACTOR = "auto-accept"


def make_handlers(casework: Casework, intake: ReferralSource, *, auto_accept: bool) -> dict[str, Handler]:
    return {
        "referral.offered": functools.partial(on_referral_offered, casework=casework, auto_accept=auto_accept),
        "referral.allocated": functools.partial(on_referral_allocated, casework=casework, intake=intake),
        "referral.withdrawn": functools.partial(on_referral_withdrawn, casework=casework),
        "offer.expired": functools.partial(on_offer_expired, casework=casework),
        "referral.transferred": functools.partial(on_referral_transferred, casework=casework, intake=intake),
    }


def on_referral_offered(session: Session, event: Event, *, casework: Casework, auto_accept: bool) -> None:
    data = event.data
    if data.get("provider_id") != casework.provider_id:
        log.info("offer for another provider ignored", extra={"event_id": event.id})
        return
    _require(event, "referral_id", "offer_id")
    _trace(event, casework)
    offer = casework.record_offer(
        session, event, offered_at=_when(event, "offered_at"), respond_by=_when(event, "respond_by")
    )
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


def on_referral_allocated(session: Session, event: Event, *, casework: Casework, intake: ReferralSource) -> None:
    data = event.data
    if data.get("provider_id") != casework.provider_id:
        return
    _require(event, "referral_id", "case_id")
    _trace(event, casework)
    try:
        case = casework.case(session, data["case_id"])
    except domain.CaseNotFound:
        raise PermanentError(
            f"referral.allocated names case {data['case_id']}, which this provider never opened"
        ) from None
    if case.referral_id != data["referral_id"]:
        raise PermanentError(f"case {case.id} is for another referral than referral.allocated names")
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
    casework.open_case(
        session,
        case,
        referral,
        actor=event.source,
        org_id=data.get("org_id"),
        external_reference=data.get("external_reference"),
    )
    log.info("case opened", extra={"case_id": case.id, "referral_id": case.referral_id})


def on_referral_withdrawn(session: Session, event: Event, *, casework: Casework) -> None:
    _require(event, "referral_id")
    # Act when the withdrawal names us, or whenever we hold an offer for that referral.
    found = casework.withdraw_referral(session, event.data["referral_id"], actor=event.source)
    if found:
        _trace(event, casework)
        log.info("referral withdrawn", extra={"referral_id": event.data["referral_id"], "offers": found})


def on_offer_expired(session: Session, event: Event, *, casework: Casework) -> None:
    """Intake's deadline for our answer passed (addressed to us: routing key offer.expired.<provider id>)."""
    _require(event, "referral_id", "offer_id")
    if event.data.get("provider_id") != casework.provider_id:
        return
    if casework.expire_offer(session, event.data["offer_id"], actor=event.source):
        _trace(event, casework)
        log.info("offer expired", extra={"offer_id": event.data["offer_id"]})


def on_referral_transferred(session: Session, event: Event, *, casework: Casework, intake: ReferralSource) -> None:
    """Intake moved the allocation to us after another provider handed the case over: fetch the referral, so
    the person's details follow them without their retelling their story."""
    data = event.data
    if data.get("provider_id") != casework.provider_id:
        return
    _require(event, "referral_id")
    case = casework.handed_over_case(session, data["referral_id"])
    if case is None:  # the case.handover itself has not arrived yet (queues keep no order across publishers)
        raise LookupError(f"no handed-over case yet for referral {data['referral_id']}")
    if case.referral is not None:
        return
    referral = intake.fetch_referral(case.referral_id)
    session.refresh(case, with_for_update=True)
    casework.attach_referral(session, case, referral, actor=event.source)
    _trace(event, casework)
    log.info("handed-over case has its referral", extra={"case_id": case.id})


def _require(event: Event, *names: str) -> None:
    missing = [name for name in names if not isinstance(event.data.get(name), str) or not event.data[name]]
    if missing:
        raise PermanentError(f"{event.type} lacks {', '.join(missing)}")


def _when(event: Event, name: str) -> datetime | None:
    raw = event.data.get(name)
    if raw in (None, ""):
        return None
    try:
        value = datetime.fromisoformat(str(raw))
    except ValueError:
        raise PermanentError(f"{event.type} has an unreadable {name}") from None
    if value.tzinfo is None:
        raise PermanentError(f"{event.type} has a {name} without a time zone")
    return value


def _trace(event: Event, casework: Casework) -> None:
    set_ids(trace.get_current_span(), referral=event.data.get("referral_id"), provider=casework.provider_id)
