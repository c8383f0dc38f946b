"""Use cases of the referral API: submit, read, withdraw, offer by hand. Plain functions with explicit
collaborators; each opens its own unit of work from `units`."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.intake import agencies, consent, domain, duty_to_notify, erasure, routing
from services.intake.models import DutyToNotifyRecord, Offer, Referral
from services.intake.offering import Offering
from services.intake.referral_keys import ReferralKeys
from services.intake.repositories import Conflict
from services.intake.uow import IntakeUnits
from shared.auth import Principal
from shared.clock import utcnow


class ReferralConflict(Exception):
    """The external reference was used before with a different body."""


class NotFound(Exception):
    pass


def request_hash(document: Any) -> str:
    """sha256 of a request's JSON document, keys sorted: the same body hashes the same however it was laid out.
    Never stored as it is: the referral keeps its HMAC (referral_keys), which nobody can recompute from the body
    without the deployment's key."""
    return hashlib.sha256(json.dumps(document, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class Submission:
    """A referral as an agency sent it: who sent it (its org and org kind: whether a Duty to Notify binds it),
    the validated body, and the sha256 of the JSON as sent (request_hash: tells a replay from a different
    referral under the same reference). `keys` key what is stored of both (IntakeConfig.keys)."""

    org_id: str
    body: dict[str, Any]
    request_hash: str
    org_kind: str
    keys: ReferralKeys = ReferralKeys()

    def stored_reference(self, keyed: bool) -> str:
        """The reference as a referral stores it: as sent, or its keyed hash when the referral is anonymous."""
        reference = self.body["external_reference"]
        return self.keys.reference(self.org_id, reference) if keyed else reference


def submit(units: IntakeUnits, offering: Offering, submission: Submission) -> tuple[Referral, bool]:
    """Store and route a referral. Returns (referral, created). Replaying the same body returns the first
    referral; the same reference with another body raises ReferralConflict. Two identical requests racing
    are settled by the unique (org, reference) constraint, not by a check before the insert."""
    body = submission.body
    referred_at = body.get("referred_at") or datetime.now(UTC)
    child = domain.is_child(body["subject"], referred_at)
    region = body["location"]["region"]
    rule = duty_to_notify.applicable_rule(submission.org_kind, region, referred_at.date())
    pathway = domain.decide_pathway(child, body.get("consent"), duty_to_notify=rule is not None)
    stored = _jsonable({**body, "referred_at": referred_at})
    if pathway.anonymous:
        stored = domain.without_identifiers(stored)
    request_hash = submission.keys.request_hash(submission.request_hash)
    try:
        with units() as uow:
            now = utcnow()
            # A reference stored in the other form (the same reference sent before with a body that took the
            # other kind of pathway) is a conflict the unique constraint cannot see.
            if uow.referrals.by_reference(submission.org_id, submission.stored_reference(not pathway.anonymous)):
                raise Conflict("external_reference")
            referral = Referral.receive(
                org_id=submission.org_id,
                external_reference=submission.stored_reference(pathway.anonymous),
                reference_keyed=pathway.anonymous,
                request_hash=request_hash,
                pathway=pathway,
                region=region,
                referred_at=referred_at,
                body=stored,
                at=now,
                duty_to_notify_rule=rule.id if rule is not None else None,
                local_authority_org_id=agencies.childrens_services_for(uow, pathway.is_child, body["location"]),
            )
            # Chosen before the referral joins the unit: nothing is written before it reaches the status
            # routing gives it, so one INSERT writes the row and no UPDATE follows.
            first = None
            if pathway.routed:
                needs = routing.routing_needs(stored, pathway.is_child)
                first = routing.choose_provider(uow.providers.directory(), needs)
            uow.referrals.add(referral)
            if rule is not None and pathway.duty_to_notify_recorded:
                # The anonymous notification, in the same transaction (a replay or a conflict makes none), and
                # built from the body alone: nothing of the referral row goes in (duty_to_notify.py).
                kind = submission.org_kind
                fields = duty_to_notify.notification(body, rule=rule, org_kind=kind, referred_at=referred_at)
                uow.duty_to_notify.add(DutyToNotifyRecord.of(fields))
            for record in consent.from_submission(referral, _consent_kept(body, pathway), now):  # the first records
                uow.consents.add(record)
            if pathway.routed:
                offering.offer_or_escalate(uow, referral, first, escalation_reason="no_eligible_provider")
            if referral.in_immediate_danger and (alert := referral.alert(now)) is not None:
                uow.escalations.add(alert)
        return referral, True
    except Conflict:
        with units() as uow:
            existing = uow.referrals.by_reference(
                submission.org_id, submission.stored_reference(pathway.anonymous)
            ) or uow.referrals.by_reference(submission.org_id, submission.stored_reference(not pathway.anonymous))
        if existing is None:
            raise
        if not hmac.compare_digest(existing.request_hash, request_hash):
            raise ReferralConflict() from None
        return existing, False


def read(
    units: IntakeUnits, principal: Principal, referral_id: str, *, purpose: str | None = None
) -> tuple[Referral, list[Offer], bool]:
    """Returns (referral, its offers, whether its body may be shown). Its own org reads all of it; the provider
    it is allocated to too, and that disclosure is logged (with the `purpose` it states, e.g. rectification);
    a coordinator sees its progress but not its body."""
    with units() as uow:
        referral = uow.referrals.get(referral_id)
        if referral is None:
            raise NotFound(referral_id)
        if referral.erased_at is not None and principal.org in (referral.org_id, referral.provider_id):
            erasure.gone(referral)  # 410 for those who knew of it; 404 for anyone else, as ever
        offers = uow.offers.of(referral.id)
        if referral.org_id == principal.org:
            return referral, offers, True
        if principal.org_kind == "coordinator":
            return referral, offers, False
        # The provider holding the case while advocacy consent is in force, or a recipient the person agreed to
        # share it with (services.intake.consent); each a logged disclosure.
        why = consent.disclosure_purpose(referral, uow.consents.of(referral.id), principal, stated=purpose)
        if why is not None and referral.erased_at is None:
            consent.log_disclosure(uow, referral, principal, why)
            return referral, offers, True
        raise NotFound(referral_id)  # never a 403 that confirms it exists


def offer_by_hand(
    units: IntakeUnits, offering: Offering, principal: Principal, referral_id: str, provider_id: str
) -> Offer:
    """A coordinator offers an escalated referral to a provider they chose."""
    with units() as uow:
        referral = uow.referrals.get(referral_id, lock=True)
        if referral is None or not referral.body:
            raise NotFound(referral_id)
        return offering.offer_to(uow, referral, provider_id, offered_by=principal.sub)


def withdraw(units: IntakeUnits, principal: Principal, referral_id: str) -> Referral:
    with units() as uow:
        referral = uow.referrals.get(referral_id, lock=True)
        if referral is None or referral.org_id != principal.org:
            raise NotFound(referral_id)
        erasure.gone(referral)
        referral.withdraw(uow.offers.of(referral.id), utcnow())
        return referral


def _consent_kept(body: dict[str, Any], pathway: domain.Pathway) -> dict[str, Any] | None:
    """The submission's consent as its records keep it: for an anonymous referral without `obtained_by`,
    free text that can name the officer (domain.ANONYMOUS_CONSENT); its records name the organisation."""
    given = body.get("consent")
    if given is None or not pathway.anonymous:
        return given
    return {name: value for name, value in given.items() if name in domain.ANONYMOUS_CONSENT}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
