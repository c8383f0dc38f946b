"""intake's consent routes: a referral's consent records, added by the referrer and listed for it and the provider
holding the case (services.intake.consent). Thin: JSON in, a use case called, JSON out."""

from __future__ import annotations

from datetime import UTC

from marshmallow import Schema, fields, validate

from contracts.events import CONSENT_PURPOSES, ORG_ID_PATTERN
from services.intake import consent, errors
from services.intake.api import instance, read
from services.intake.models import ConsentRecord
from shared.auth import current_principal, requires
from shared.web import Blueprint, error_body


class ConsentInSchema(Schema):
    purpose = fields.String(required=True, validate=validate.OneOf(CONSENT_PURPOSES))
    given = fields.Boolean(required=True)
    obtained_at = fields.AwareDateTime(required=True, default_timezone=UTC)
    obtained_by = fields.String(
        validate=validate.Length(1, 200),
        metadata={"description": "Who obtained it (a role or an organisation); the recording org when omitted."},
    )
    interpreter_used = fields.Boolean(load_default=False)
    recipients = fields.List(
        fields.String(validate=validate.Regexp(ORG_ID_PATTERN, error="Not an organisation id.")),
        load_default=list,
        validate=validate.Length(max=50),
        metadata={"description": "Organisation ids the person agreed may read the referral: data_sharing only."},
    )


class ConsentRecordSchema(Schema):
    id = fields.String()
    referral_id = fields.String()
    purpose = fields.String(metadata={"enum": list(CONSENT_PURPOSES)})
    given = fields.Boolean()
    obtained_at = fields.DateTime()
    obtained_by = fields.String()
    interpreter_used = fields.Boolean()
    recipients = fields.List(fields.String())
    recorded_at = fields.DateTime()
    recorded_by = fields.String()
    source = fields.String(metadata={"enum": ["submission", "referrer", "provider"]})


blp = Blueprint(
    "consent", __name__, url_prefix="/v1/referrals", description="A referral's consent records, owned by intake"
)
errors.register(blp)
blp.errorhandler(consent.ConsentNotFound)(lambda error: error_body(404, "No such referral."))


@blp.route("/<referral_id>/consent", methods=["POST"])
@requires("referrals:write")
@blp.arguments(ConsentInSchema)
@blp.response(201, ConsentRecordSchema)
@blp.alt_response(404, description="No such referral of your organisation")
@blp.alt_response(422, description="A bad field (named), recipients on a purpose other than data_sharing, "
                  "or obtained_at in the future")  # fmt: skip
@blp.alt_response(410, description="The referral was erased")
def add_consent(body, referral_id: str):
    """Add a consent record for one purpose; the latest per purpose is in force. Withdrawing advocacy consent
    (`given: false`) closes the case at the provider holding it and tells the referrer's webhook."""
    principal = current_principal()
    new = consent.NewConsent(
        purpose=body["purpose"],
        given=body["given"],
        obtained_at=body["obtained_at"],
        obtained_by=body.get("obtained_by") or principal.org,
        interpreter_used=body["interpreter_used"],
        recipients=tuple(body["recipients"]),
    )
    return _view(consent.record_by_referrer(instance().use_cases.units, principal, referral_id, new))


@blp.route("/<referral_id>/consent", methods=["GET"])
@requires("referrals:read")
@blp.response(200, ConsentRecordSchema(many=True))
@blp.alt_response(404, description="No such referral of your organisation or of a case you hold")
@blp.alt_response(410, description="The referral was erased")
def list_consent(referral_id: str):
    """The referral's consent records, oldest first: for its own org and for the provider holding its case."""
    records = consent.records_for(instance().use_cases.units, current_principal(), referral_id)
    read([referral_id], "referral.consent")
    return [_view(r) for r in records]


def _view(record: ConsentRecord) -> dict:
    return {
        "id": record.id,
        "referral_id": record.referral_id,
        "purpose": record.purpose,
        "given": record.given,
        "obtained_at": record.obtained_at,
        "obtained_by": record.obtained_by,
        "interpreter_used": record.interpreter_used,
        "recipients": record.recipients or [],
        "recorded_at": record.recorded_at,
        "recorded_by": record.recorded_by,
        "source": record.source,
    }
