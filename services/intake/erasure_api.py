"""intake's erasure routes (UK GDPR Art. 17, 19; services.intake.erasure): request a referral's erasure and
follow each recipient's confirmation. Thin: JSON in, a use case called, JSON out."""

from __future__ import annotations

from flask import url_for
from marshmallow import Schema, fields, validate

from contracts.events import KeptBecause
from services.intake import erasure, errors
from services.intake.api import instance, read
from shared.auth import current_principal, requires
from shared.clock import utcnow
from shared.web import Blueprint, error_body

_BECAUSE = list(KeptBecause.__args__)  # type: ignore[attr-defined]


class ErasureInSchema(Schema):
    reason = fields.String(
        required=True,
        validate=validate.Length(1, 2000),
        metadata={
            "description": "Why the erasure is requested (e.g. the person's request under Art. 17, its date): about "
            "the request, not the person. Stored and shown on GET, never put in an event or a log."
        },
    )


class KeptSchema(Schema):
    recipient = fields.String(metadata={"description": "intake, provider.<id> or notifications"})
    record = fields.String(metadata={"description": "A record kind kept without identifiers"})
    because = fields.String(metadata={"enum": _BECAUSE})


class ErasureRecipientSchema(Schema):
    recipient = fields.String(metadata={"description": "provider.<id> or notifications"})
    kind = fields.String(metadata={"enum": ["provider", "notifications"]})
    requested_at = fields.DateTime()
    confirmed_at = fields.DateTime(allow_none=True, metadata={"description": "When it erased its copy; null until"})
    overdue = fields.Boolean(metadata={"description": "Still silent ERASURE_ACK_HOURS after it was asked"})


class ErasureSchema(Schema):
    referral_id = fields.String()
    requested_at = fields.DateTime()
    requested_by = fields.String(metadata={"description": "The requesting organisation"})
    reason = fields.String()
    status = fields.String(metadata={"enum": [erasure.PENDING, erasure.COMPLETE]})
    recipients = fields.List(fields.Nested(ErasureRecipientSchema))
    kept = fields.List(fields.Nested(KeptSchema), metadata={"description": "What each keeps, and why"})


blp = Blueprint(
    "erasure",
    __name__,
    url_prefix="/v1/referrals",
    description="Erasure of a referral's personal data at intake and at every recipient",
)
errors.register(blp)
blp.errorhandler(erasure.ErasureNotFound)(lambda error: error_body(404, "No such referral.", "referral_id"))
blp.errorhandler(erasure.ErasureAlreadyRequested)(
    lambda error: error_body(409, "The referral's erasure was already requested: GET it.", "referral_id")
)


@blp.route("/<referral_id>/erasure", methods=["POST"])
@requires("referrals:write", "referrals:erase", any_of=True)
@blp.arguments(ErasureInSchema)
@blp.response(202, ErasureSchema)
@blp.alt_response(404, description="No such referral of your organisation (or, for a DPO, at all)")
@blp.alt_response(409, description="Its erasure was already requested")
def request_erasure(body, referral_id: str):
    """Erase a referral's personal data (the referring organisation with `referrals:write`, or a platform DPO:
    `org_kind` ops with `referrals:erase`). Intake erases its copy at once and asks every recipient (each
    charity that received anything about it, and notifications) to erase theirs; follow them at `Location`.
    Afterwards the referral and every write about it answer 410."""
    intake = instance()
    done = erasure.request_erasure(
        intake.use_cases.units,
        current_principal(),
        referral_id,
        body["reason"],
        after_commit=intake.use_cases.after_erasure,
    )
    location = url_for("erasure.read_erasure", referral_id=referral_id)
    return erasure.erasure_view(done, now=utcnow(), ack=intake.config.erasure_ack), 202, {"Location": location}


@blp.route("/<referral_id>/erasure", methods=["GET"])
@requires("referrals:read", "referrals:erase", any_of=True)
@blp.response(200, ErasureSchema)
@blp.alt_response(404, description="No erasure of a referral of your organisation (or, for a DPO, at all)")
def read_erasure(referral_id: str):
    """The erasure's progress: `pending` until every recipient confirmed, then `complete`; a recipient silent
    past `ERASURE_ACK_HOURS` is `overdue`."""
    intake = instance()
    found = erasure.erasure_of(intake.use_cases.units, current_principal(), referral_id)
    read([referral_id], "referral.erasure")
    return erasure.erasure_view(found, now=utcnow(), ack=intake.config.erasure_ack)
