"""Rectification (UK GDPR Art. 16, 19; issue 14 item 3): the referring organisation corrects a referral with a
JSON Merge Patch (RFC 7396) on its `subject`, `referrer`, `needs` and `risk`, and the charity holding its case
is told to fetch it again (`referral.rectified.provider.<p>`), so its copy matches.

The merged referral must pass the same schema and rules as a new one, or nothing is written. What intake decided
from the referral when it arrived stands: its pathway, routing (who was offered it), the Duty to Notify record
and the child's local authority. A correction that would turn an adult into a child or a child into an adult is
refused (naming `subject.date_of_birth`): that changes the pathway, so the referrer withdraws it and refers the
person again. An erased referral cannot be rectified (410, as every answer about it). Each rectification is
recorded (when, by whom, which sections), never its values.
"""

from __future__ import annotations

import copy
from typing import Any, Final, cast, get_args

from marshmallow import ValidationError

from contracts import events
from services.intake import consent, domain, erasure
from services.intake.domain import InvalidState, ReferralRejected
from services.intake.models import Offer, Rectification, Referral
from services.intake.referrals import NotFound, _jsonable
from services.intake.schemas import ReferralInSchema
from services.intake.uow import IntakeUnitOfWork, IntakeUnits
from shared.auth import Principal
from shared.clock import utcnow

SECTIONS: Final[tuple[str, ...]] = get_args(events.RectifiedSection)  # subject, referrer, needs, risk
PURPOSE: Final = consent.RECTIFICATION  # the disclosure purpose of the holder's fetch after one


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396: an object patch merges key by key, `null` removes a key, anything else replaces the target."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    merged = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def rectify(
    units: IntakeUnits, principal: Principal, referral_id: str, patch: dict[str, Any]
) -> tuple[Referral, list[Offer]]:
    """Apply `patch` to the referral of `principal`'s organisation; returns it and its offers. A patch that
    changes nothing writes nothing (PATCH is idempotent: the same patch again is no second rectification)."""
    for key in patch:
        if key not in SECTIONS:
            raise ReferralRejected(key, f"{key} cannot be rectified: only {', '.join(SECTIONS)} may change")
    with units() as uow:
        referral = uow.referrals.get(referral_id, lock=True)
        if referral is None or referral.org_id != principal.org:
            raise NotFound(referral_id)  # never a 403 that confirms it exists
        erasure.gone(referral)  # an erased referral holds nothing to correct (410)
        if referral.reference_keyed:  # recorded anonymously: domain.without_identifiers kept none of their details
            raise InvalidState("a referral recorded without identifiers holds nothing to rectify")
        body = merge_patch(referral.body, {k: v for k, v in patch.items() if k in SECTIONS})
        loaded = _validated(body)
        if domain.is_child(loaded["subject"], loaded["referred_at"]) != referral.is_child:
            raise ReferralRejected(
                "subject.date_of_birth",
                "this correction would change whether the person is a child: withdraw the referral and refer again",
            )
        stored = _jsonable(loaded)  # as a new referral is stored: loaded, its defaults filled in
        sections = [s for s in SECTIONS if stored.get(s) != referral.body.get(s)]
        if not sections:
            return referral, uow.offers.of(referral.id)
        now = utcnow()
        referral.body, referral.updated_at = stored, now
        uow.rectifications.add(
            Rectification(referral_id=referral.id, rectified_at=now, org_id=principal.org, sub=principal.sub,
                          sections=sections)
        )  # fmt: skip
        holder = _holder(uow, referral)
        if holder is not None:
            uow.stage(
                events.ReferralRectified(  # addressed: referral.rectified.provider.<provider_id>
                    referral_id=referral.id,
                    recipient=events.provider_recipient(holder),
                    rectified_at=now,
                    sections=cast(list[events.RectifiedSection], sections),
                )
            )
        return referral, uow.offers.of(referral.id)


def _validated(body: dict[str, Any]) -> dict[str, Any]:
    """The merged referral loaded by the schema of a new referral; the first refusal names its field."""
    try:
        return cast(dict[str, Any], ReferralInSchema().load(body))
    except ValidationError as invalid:
        field, message = _first(invalid.normalized_messages())
        raise ReferralRejected(field, message) from None


def _first(messages: Any, path: str = "") -> tuple[str, str]:
    if isinstance(messages, dict):
        key, inner = next(iter(messages.items()))
        name = str(key) if key != "_schema" else ""
        return _first(inner, f"{path}.{name}" if path and name else (name or path))
    if isinstance(messages, list) and messages:
        return _first(messages[0], path)
    return path or "_schema", str(messages)


def _holder(uow: IntakeUnitOfWork, referral: Referral) -> str | None:
    """The charity holding the referral's case and allowed to read it now (consent.disclosure_purpose): it
    is told to fetch it again. A withdrawn referral's, or one whose advocacy consent was withdrawn, is not:
    it may no longer read the referral (erasure is what reaches it then)."""
    if referral.status != "allocated" or referral.provider_id is None:
        return None
    holder = Principal(sub=referral.provider_id, org=referral.provider_id, org_kind="provider", scopes=frozenset())
    allowed = consent.disclosure_purpose(referral, uow.consents.of(referral.id), holder)
    return referral.provider_id if allowed == "case_opening" else None
