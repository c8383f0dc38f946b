"""Consent as records, owned by intake (DESIGN 5, issue 12 item 4).

Per purpose (`nrm_referral`, `advocacy`, `data_sharing`) the person's consent is a list of records, each who
obtained it, when, and whether an interpreter helped; the latest per purpose is the one in force. They come
from the submission's `consent` object, from the referrer (`POST /v1/referrals/{id}/consent`) and from the
provider holding the case (`case.consent_recorded`). When the advocacy consent in force becomes "not given",
the provider holding the case is told to close it (`consent.withdrawn.<p>`) and the referrer hears
(`referral.consent_withdrawn`).

The records decide who may read the referral's body: its own org; the provider it is allocated to while
advocacy consent is in force (a child is routed without consent); an org named in the `data_sharing` record
in force. Nobody else (UK GDPR Art. 9: share the minimum, with whom the person agreed).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, cast

from contracts import events
from services.intake import recipients
from services.intake.domain import ReferralErased, ReferralRejected
from services.intake.models import ConsentRecord, Referral
from services.intake.uow import IntakeUnitOfWork, IntakeUnits
from shared.auth import Principal
from shared.clock import utcnow
from shared.messaging.envelope import Event
from shared.messaging.errors import PermanentError

log = logging.getLogger(__name__)

PURPOSES = events.CONSENT_PURPOSES
ADVOCACY: Final = "advocacy"
DATA_SHARING: Final = "data_sharing"
RECTIFICATION: Final = "rectification"  # a disclosure purpose: the holder's fetch after a rectification
FROM_SUBMISSION, FROM_REFERRER, FROM_PROVIDER = "submission", "referrer", "provider"
PROVIDER_KINDS = ("provider", "service")  # how a provider's instance calls intake
PROVIDER_CLOCK_SKEW = timedelta(minutes=5)  # a charity's server clock may run a little ahead of intake's


class ConsentNotFound(Exception):
    """No such referral, or not one the caller may see consent of (a 404, never a 403)."""


@dataclass(frozen=True)
class NewConsent:
    purpose: str
    given: bool
    obtained_at: datetime
    obtained_by: str
    interpreter_used: bool = False
    recipients: tuple[str, ...] = ()


def check(new: NewConsent, now: datetime) -> None:
    """The rules the schema alone does not see; each names its field."""
    if new.purpose not in PURPOSES:
        raise ReferralRejected("purpose", f"purpose must be one of {', '.join(PURPOSES)}")
    if new.recipients and new.purpose != DATA_SHARING:
        raise ReferralRejected("recipients", "recipients are only for purpose data_sharing")
    if new.obtained_at > now:
        raise ReferralRejected("obtained_at", "obtained_at is in the future")


def in_force(records: Iterable[ConsentRecord]) -> dict[str, ConsentRecord]:
    """The record in force per purpose: the last of each (records come oldest first)."""
    latest: dict[str, ConsentRecord] = {}
    for record in records:
        latest[record.purpose] = record
    return latest


def disclosure_purpose(
    referral: Referral, records: Iterable[ConsentRecord], principal: Principal, *, stated: str | None = None
) -> str | None:
    """Why `principal` (not the referring org) may read the referral's body, or None: it may not. The provider
    holding the case fetches it to open the case, or again after a rectification when it says so (`stated`
    RECTIFICATION: the same right to read it, recorded with its own purpose)."""
    force = in_force(records)
    if (
        referral.status == "allocated"
        and referral.provider_id == principal.org
        and principal.org_kind in PROVIDER_KINDS
        and (referral.is_child or _given(force.get(ADVOCACY)))
    ):
        return RECTIFICATION if stated == RECTIFICATION else "case_opening"
    sharing = force.get(DATA_SHARING)
    if _given(sharing) and principal.org in (sharing.recipients or []):  # type: ignore[union-attr]
        return "data_sharing"
    return None


def from_submission(referral: Referral, consent: dict[str, Any] | None, at: datetime) -> list[ConsentRecord]:
    """The submission's `consent` booleans as the referral's first records, obtained by the referring org (or
    whoever the submission names)."""
    if not consent:
        return []
    obtained_at = consent.get("obtained_at") or referral.referred_at
    new = [
        NewConsent(
            purpose=purpose,
            given=bool(consent[purpose]),
            obtained_at=obtained_at,
            obtained_by=consent.get("obtained_by") or referral.org_id,
            interpreter_used=bool(consent.get("interpreter_used")),
        )
        for purpose in PURPOSES
        if purpose in consent
    ]
    return [_row(referral.id, n, recorded_by=referral.org_id, source=FROM_SUBMISSION, at=at) for n in new]


def record(
    uow: IntakeUnitOfWork,
    referral: Referral,
    new: NewConsent,
    *,
    recorded_by: str,
    source: str,
    skew: timedelta = timedelta(0),
) -> ConsentRecord:
    """Add a record; when it makes the advocacy consent in force "not given" where it was not already, tell the
    provider holding the case and the referrer (once: a second withdrawal changes nothing in force). `skew`:
    how far ahead of this clock another machine's `obtained_at` may be."""
    now = utcnow()
    check(new, now + skew)
    before = in_force(uow.consents.of(referral.id)).get(ADVOCACY)
    row = _row(referral.id, new, recorded_by=recorded_by, source=source, at=now)
    uow.consents.add(row)
    after = in_force(uow.consents.of(referral.id)).get(ADVOCACY)
    if after is row and not row.given and (before is None or before.given):
        _withdrawn(uow, referral, row, source)
    return row


def record_by_referrer(units: IntakeUnits, principal: Principal, referral_id: str, new: NewConsent) -> ConsentRecord:
    with units() as uow:
        referral = uow.referrals.get(referral_id, lock=True)  # records of one referral take turns
        if referral is None or referral.org_id != principal.org:
            raise ConsentNotFound(referral_id)
        if referral.erased_at is not None:
            raise ReferralErased(referral_id)
        return record(uow, referral, new, recorded_by=principal.org, source=FROM_REFERRER)


def records_for(units: IntakeUnits, principal: Principal, referral_id: str) -> list[ConsentRecord]:
    """The referral's records: for its own org, and for the provider holding its case."""
    with units() as uow:
        referral = uow.referrals.get(referral_id)
        if referral is None:
            raise ConsentNotFound(referral_id)
        holder = referral.provider_id == principal.org and principal.org_kind in PROVIDER_KINDS
        if referral.org_id != principal.org and not holder:
            raise ConsentNotFound(referral_id)
        if referral.erased_at is not None:
            raise ReferralErased(referral_id)
        return uow.consents.of(referral.id)


def on_case_consent_recorded(uow: IntakeUnitOfWork, event: Event) -> None:
    """The advocate recorded consent at the provider holding the case: intake keeps the record. The catalogue
    checked that the provider itself published it; here, that it holds this referral's case."""
    recorded: events.CaseConsentRecorded = event.data
    referral = uow.referrals.get(recorded.referral_id, lock=True)
    if referral is None or referral.provider_id != recorded.provider_id:
        raise PermanentError("consent recorded by a provider that does not hold the referral")
    if referral.erased_at is not None:  # asked to erase its copy meanwhile: nothing more is kept of it
        log.info("consent recorded for an erased referral ignored", extra={"referral_id": referral.id})
        return
    if referral.case_id is not None and referral.case_id != recorded.case_id:
        raise PermanentError("consent recorded for another case than the referral's")
    new = NewConsent(
        purpose=recorded.purpose,
        given=recorded.given,
        obtained_at=recorded.obtained_at,
        obtained_by=recorded.obtained_by or recorded.provider_id,
        interpreter_used=recorded.interpreter_used,
        recipients=tuple(recorded.recipients),
    )
    try:
        record(uow, referral, new, recorded_by=recorded.provider_id, source=FROM_PROVIDER, skew=PROVIDER_CLOCK_SKEW)
    except ReferralRejected as refused:  # e.g. obtained_at ahead of this clock: it can never be accepted
        raise PermanentError(f"consent record refused: {refused.field}") from None


def log_disclosure(uow: IntakeUnitOfWork, referral: Referral, principal: Principal, purpose: str) -> None:
    kind = recipients.PROVIDER if principal.org_kind in PROVIDER_KINDS else recipients.ORG
    recipients.record(uow, referral.id, principal.org, kind, purpose, sub=principal.sub)


def _given(record: ConsentRecord | None) -> bool:
    return record is not None and record.given


def _row(referral_id: str, new: NewConsent, *, recorded_by: str, source: str, at: datetime) -> ConsentRecord:
    return ConsentRecord(
        id=str(uuid.uuid4()),
        referral_id=referral_id,
        purpose=new.purpose,
        given=new.given,
        obtained_at=new.obtained_at,
        obtained_by=new.obtained_by,
        interpreter_used=new.interpreter_used,
        recipients=list(new.recipients),
        recorded_at=at,
        recorded_by=recorded_by,
        source=source,
    )


def _withdrawn(uow: IntakeUnitOfWork, referral: Referral, row: ConsentRecord, source: str) -> None:
    holder = referral.provider_id if referral.status == "allocated" else None
    if holder is not None:
        uow.stage(
            events.ConsentWithdrawn(  # addressed: consent.withdrawn.<provider_id>
                referral_id=referral.id,
                provider_id=holder,
                case_id=referral.case_id,
                purpose=ADVOCACY,
                obtained_at=row.obtained_at,
                by="provider" if source == FROM_PROVIDER else "referrer",
            )
        )
    uow.stage(
        events.ReferralConsentWithdrawn(
            referral_id=referral.id,
            org_id=referral.org_id,
            external_reference=referral.reference_for_referrer,
            status=cast(events.ReferralStatus, referral.status),
            purpose=ADVOCACY,
            provider_id=holder,
            local_authority_org_id=referral.local_authority_org_id,
        )
    )
