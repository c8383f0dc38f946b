"""Erasure of a referral's personal data (UK GDPR Art. 17), reaching every recipient (Art. 19; issue 14).

The referring organisation (`referrals:write`) or a platform DPO (`org_kind` ops with `referrals:erase`)
requests it. In the same transaction intake erases its own copy (`erase_copy`), keeping codes and dates
without identifiers (`KEPT` says what and why), and asks each recipient in the record of recipients
(services.intake.recipients) with one `referral.erasure_requested` each. Each answers `erasure.completed`
(`on_erasure_completed`); the erasure is complete when every recipient has confirmed. A recipient silent past
`ERASURE_ACK_HOURS` shows as overdue.

The request's `reason` is the requester's free text about the request, not about the person: intake stores
it and shows it to whoever may read the erasure, and never puts it in an event or a log line.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Final

from contracts import events
from services.intake import recipients
from services.intake.domain import ReferralErased
from services.intake.models import Erasure, ErasureRecipient, Referral
from services.intake.uow import IntakeUnitOfWork, IntakeUnits
from shared.auth import Principal
from shared.clock import utcnow
from shared.messaging.envelope import Event
from shared.messaging.errors import PermanentError

log = logging.getLogger(__name__)

INTAKE: Final = "intake"  # how `kept` names intake's own records
ERASED: Final = "erased"  # what an erased text column holds where the schema wants one
PENDING, COMPLETE = "pending", "complete"
# What intake keeps of an erased referral, without identifiers, and why.
KEPT: Final = (
    {"record": "referral_routing", "because": "statistics"},  # region, pathway, age group, status, dates
    {"record": "offer_answers", "because": "statistics"},  # the charities offered it and their coded answers
    {"record": "consent_records", "because": "audit"},  # purposes, given or not, and when
    {"record": "recipients_record", "because": "audit"},  # who received what about it, and when (Art. 30)
)


class ErasureNotFound(Exception):
    """No such referral, or not one the caller may erase or see the erasure of (a 404, never a 403)."""


class ErasureAlreadyRequested(Exception):
    """The referral's erasure was requested before: there is one per referral (a 409)."""


def may_erase(principal: Principal, referral: Referral) -> bool:
    """The referring organisation with referrals:write, or a platform DPO (org_kind ops, referrals:erase)."""
    if referral.org_id == principal.org and principal.has("referrals:write"):
        return True
    return principal.org_kind == "ops" and principal.has("referrals:erase")


def request_erasure(
    units: IntakeUnits,
    principal: Principal,
    referral_id: str,
    reason: str,
    *,
    after_commit: Callable[[], None] = lambda: None,
) -> Erasure:
    """Erase intake's copy of the referral and ask each of its recipients to erase theirs, in one transaction;
    then `after_commit` (bootstrap's: shared.db.scrub_files, so no erased byte stays in SQLite's files)."""
    with units() as uow:
        referral = uow.referrals.get(referral_id, lock=True)
        if referral is None or not may_erase(principal, referral):
            raise ErasureNotFound(referral_id)
        if uow.erasures.of_referral(referral.id) is not None:
            raise ErasureAlreadyRequested(referral_id)
        now = utcnow()
        erasure = Erasure(
            id=str(uuid.uuid4()),
            referral_id=referral.id,
            requested_at=now,
            requested_by=principal.org,
            reason=reason,
            kept=[dict(k) for k in KEPT],
            recipients=[],
        )
        asked = recipients.recipients_of(uow, referral)
        erase_copy(uow, referral, now)  # first: it deletes the outbox rows about the referral
        for recipient in asked:
            erasure.recipients.append(
                ErasureRecipient(recipient=recipient.recipient, kind=recipient.kind, requested_at=now, kept=[])
            )
            uow.stage(
                events.ReferralErasureRequested(
                    referral_id=referral.id, erasure_id=erasure.id, recipient=recipient.recipient, requested_at=now
                )
            )
        uow.erasures.add(erasure)
    log.info("referral erased at intake", extra={"referral_id": referral_id, "recipients": len(asked)})
    after_commit()
    return erasure


def erase_copy(uow: IntakeUnitOfWork, referral: Referral, at: datetime) -> None:
    """Erase intake's personal data of the referral, keeping what KEPT says: the body (subject, referrer,
    needs, risk, narrative), the external reference and the body's hash, the advocate's contact, the consent
    records' `obtained_by`, its stored idempotent responses and its outbox rows. A pending offer is withdrawn and
    an open escalation resolved, so nothing acts on it again."""
    referral.body = {}
    referral.external_reference = f"{ERASED}-{referral.id}"  # unique per org, as the column must be
    referral.request_hash = ERASED
    referral.advocate = None
    referral.erased_at = referral.updated_at = at
    for offer in uow.offers.pending_for(referral.id):
        offer.close("withdrawn", at)
    for escalation in uow.escalations.open_for(referral.id):
        escalation.resolve(at, by=ERASED)
    for record in uow.consents.of(referral.id):
        record.obtained_by = ERASED
    uow.erasures.forget_stored(referral.id)


def erasure_of(units: IntakeUnits, principal: Principal, referral_id: str) -> Erasure:
    """The referral's erasure, for those who may request it."""
    with units() as uow:
        referral = uow.referrals.get(referral_id)
        erasure = uow.erasures.of_referral(referral_id) if referral is not None else None
        own = referral is not None and referral.org_id == principal.org
        if referral is None or erasure is None or not (own or may_erase(principal, referral)):
            raise ErasureNotFound(referral_id)
        return erasure


def erasure_view(erasure: Erasure, *, now: datetime, ack: timedelta) -> dict[str, Any]:
    """GET .../erasure's body (DESIGN 5); a recipient silent for longer than `ack` is overdue. `kept`: intake's,
    then each recipient's that confirmed, each naming whose it is."""
    kept = [{"recipient": INTAKE, **k} for k in erasure.kept]
    for recipient in erasure.recipients:
        kept += [{"recipient": recipient.recipient, **k} for k in recipient.kept or []]
    return {
        "referral_id": erasure.referral_id,
        "requested_at": erasure.requested_at,
        "requested_by": erasure.requested_by,
        "reason": erasure.reason,
        "status": COMPLETE if erasure.completed_at is not None else PENDING,
        "recipients": [
            {
                "recipient": r.recipient,
                "kind": r.kind,
                "requested_at": r.requested_at,
                "confirmed_at": r.confirmed_at,
                "overdue": r.confirmed_at is None and now - r.requested_at > ack,
            }
            for r in erasure.recipients
        ],
        "kept": kept,
    }


def on_erasure_completed(uow: IntakeUnitOfWork, event: Event) -> None:
    """A recipient erased its copy. The catalogue checked the voice (a charity's own broker user for its
    provider_id, or notifications' as the platform's); here, that it is a recipient asked for this erasure and
    that it confirms as itself. A repeat changes nothing."""
    done: events.ErasureCompleted = event.data
    uow.referrals.get(done.referral_id, lock=True)  # confirmations of one referral take turns
    erasure = uow.erasures.get(done.erasure_id)
    if erasure is None or erasure.referral_id != done.referral_id:
        raise PermanentError("confirmation of an erasure intake did not request")
    speaker = events.provider_recipient(done.provider_id) if done.provider_id is not None else recipients.NOTIFICATIONS
    if done.recipient != speaker:
        raise PermanentError("confirmation for another recipient than the one speaking")
    recipient = next((r for r in erasure.recipients if r.recipient == done.recipient), None)
    if recipient is None:
        raise PermanentError("confirmation by a recipient this erasure did not ask")
    if recipient.confirmed_at is not None:
        return
    recipient.confirmed_at = done.erased_at
    recipient.kept = [{"record": k.record, "because": k.because} for k in done.kept]
    if all(r.confirmed_at is not None for r in erasure.recipients):
        erasure.completed_at = utcnow()
        log.info("erasure complete", extra={"referral_id": erasure.referral_id})


def gone(referral: Referral) -> None:
    """Refuse anything about an erased referral (410 Gone, naming referral_id)."""
    if referral.erased_at is not None:
        raise ReferralErased(referral.id)
