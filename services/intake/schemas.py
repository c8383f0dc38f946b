"""The wire contract of intake (DESIGN.md section 4). Unknown fields are rejected: nothing can be
mass-assigned."""

from __future__ import annotations

from datetime import UTC, datetime

import pycountry
from marshmallow import Schema, ValidationError, fields, validate, validates, validates_schema

REGIONS = (
    "london", "south_east", "south_west", "east_of_england", "east_midlands", "west_midlands",
    "yorkshire_and_humber", "north_east", "north_west", "wales", "scotland", "northern_ireland",
)  # fmt: skip
EXPLOITATION_TYPES = (
    "labour", "sexual", "criminal", "domestic_servitude", "organ_removal", "financial", "other", "unknown",
)  # fmt: skip
NEEDS = (
    "accommodation", "legal", "immigration", "health", "mental_health", "finance", "education",
    "employment", "family", "other",
)  # fmt: skip
STATUSES = ("received", "offered", "allocated", "escalated", "withdrawn", "recorded")
PATHWAYS = ("nrm", "duty_to_notify", "advocacy_only", "not_notified")  # README, "Pathways"
PROVIDER_ID = r"^[a-z0-9][a-z0-9-]{1,62}$"  # it becomes part of a routing key and a queue name


# As enums, so the OpenAPI document states them (a validator function would be invisible to it).
COUNTRIES = (*sorted(c.alpha_2 for c in pycountry.countries), "unknown")
LANGUAGES = tuple(sorted(lang.alpha_2 for lang in pycountry.languages if hasattr(lang, "alpha_2")))
_language = validate.OneOf(LANGUAGES, error="Not an ISO 639-1 language code (e.g. en, sq, ro).")
_country = validate.OneOf(COUNTRIES, error="Not an ISO 3166-1 alpha-2 country code (e.g. AL, VN) or 'unknown'.")


class ReferrerSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(1, 200))
    role = fields.String(validate=validate.Length(max=200))
    email = fields.Email(required=True)
    phone = fields.String(validate=validate.Length(max=40))


class SafeContactSchema(Schema):
    method = fields.String(required=True, validate=validate.OneOf(("phone", "email", "post", "via_referrer", "none")))
    value = fields.String(validate=validate.Length(max=500))
    safe_to_leave_message = fields.Boolean(load_default=False)


class SubjectSchema(Schema):
    given_name = fields.String(validate=validate.Length(1, 100))
    family_name = fields.String(validate=validate.Length(1, 100))
    aliases = fields.List(fields.String(validate=validate.Length(1, 100)), validate=validate.Length(max=20))
    date_of_birth = fields.Date()
    age_estimate = fields.Integer(validate=validate.Range(0, 120))
    age_disputed = fields.Boolean(load_default=False)
    sex = fields.String(required=True, validate=validate.OneOf(("female", "male", "non_binary", "unknown")))
    nationality = fields.String(required=True, validate=_country)
    languages = fields.List(fields.String(validate=_language), required=True, validate=validate.Length(min=1))
    interpreter_needed = fields.Boolean(load_default=False)
    safe_contact = fields.Nested(SafeContactSchema)

    @validates("date_of_birth")
    def _born_in_the_past(self, value, **_):
        today = datetime.now(UTC).date()
        if value > today:
            raise ValidationError("date_of_birth is in the future.")
        if today.year - value.year > 120:
            raise ValidationError("date_of_birth gives an age over 120.")

    @validates_schema
    def _age_known(self, data, **_):
        if not data.get("age_disputed") and data.get("date_of_birth") is None and data.get("age_estimate") is None:
            raise ValidationError(
                "date_of_birth or age_estimate is required unless age_disputed.", field_name="date_of_birth"
            )


class ExploitationSchema(Schema):
    type = fields.String(required=True, validate=validate.OneOf(EXPLOITATION_TYPES))
    location = fields.String(load_default="unknown", validate=validate.OneOf(("uk", "overseas", "both", "unknown")))
    as_child = fields.Boolean(load_default=False)
    county_lines = fields.Boolean(load_default=False)


class LocationSchema(Schema):
    region = fields.String(required=True, validate=validate.OneOf(REGIONS))
    local_authority = fields.String(
        validate=validate.Regexp(r"^[EWSN]\d{8}$", error="local_authority must be an ONS code such as E09000033.")
    )


class RiskSchema(Schema):
    immediate_danger = fields.Boolean(load_default=False)
    re_trafficking_risk = fields.String(validate=validate.OneOf(("low", "medium", "high")))
    notes = fields.String(validate=validate.Length(max=2000))


class ConsentSchema(Schema):
    nrm_referral = fields.Boolean(required=True)
    advocacy = fields.Boolean(required=True)
    data_sharing = fields.Boolean(required=True)
    obtained_at = fields.AwareDateTime(default_timezone=UTC)
    obtained_by = fields.String(
        validate=validate.Length(1, 200),
        metadata={"description": "Who obtained it (a role or an organisation); the referring org when omitted."},
    )
    interpreter_used = fields.Boolean(load_default=False)


class ReferralInSchema(Schema):
    # Travels in events to notifications (contracts.events.ExternalReference), unless the referral is recorded
    # anonymously (referral_keys): no control characters.
    external_reference = fields.String(
        required=True,
        validate=validate.Regexp(
            r"^[^\x00-\x1f\x7f]{1,64}$", error="1 to 64 characters, none of them control characters."
        ),
    )
    referred_at = fields.AwareDateTime(default_timezone=UTC)
    referrer = fields.Nested(ReferrerSchema, required=True)
    subject = fields.Nested(SubjectSchema, required=True)
    exploitation = fields.List(fields.Nested(ExploitationSchema), required=True, validate=validate.Length(1, 20))
    location = fields.Nested(LocationSchema, required=True)
    risk = fields.Nested(RiskSchema)
    needs = fields.List(fields.String(validate=validate.OneOf(NEEDS)), load_default=list)
    consent = fields.Nested(ConsentSchema)
    narrative = fields.String(validate=validate.Length(max=20_000))
    difficult_circumstances = fields.Boolean(load_default=False)


class AdvocateOutSchema(Schema):
    name = fields.String()
    email = fields.String()


class AllocationSchema(Schema):
    provider_id = fields.String()
    case_id = fields.String()
    advocate = fields.Nested(AdvocateOutSchema, allow_none=True)
    accepted_at = fields.DateTime()


class ReferralSummarySchema(Schema):
    id = fields.String()
    external_reference = fields.String(
        allow_none=True,
        metadata={
            "description": (
                "The referrer's reference. A referral recorded without identifiers (pathway duty_to_notify, or "
                "not_notified and not routed) keeps only its keyed hash: the POST echoes it, later reads and "
                "events carry null (match it by id)."
            )
        },
    )
    status = fields.String(metadata={"enum": list(STATUSES)})
    pathway = fields.String(
        metadata={
            "enum": list(PATHWAYS),
            "description": (
                "nrm: a child, or an adult consenting to the NRM. For an adult without NRM consent: "
                "advocacy_only (consents to advocacy: routed with their details; an anonymous Duty to Notify "
                "record is made apart), duty_to_notify (no advocacy consent: recorded without identifiers, and "
                "the anonymous record made), not_notified (no Duty to Notify rule binds the referrer where the "
                "person was found: routed with advocacy consent, else recorded without identifiers)."
            ),
        }
    )
    duty_to_notify_recorded = fields.Boolean(
        metadata={"description": "An anonymous Duty to Notify record was made (stored apart, not linked to this)."}
    )
    duty_to_notify_rule = fields.String(
        allow_none=True,
        metadata={
            "description": (
                "The Duty to Notify rule that binds the referrer (its org_kind) where the person was found (the "
                "referral's region), e.g. mlsa2015_s52 (Modern Slavery Act 2015 s52, England and Wales); null "
                "when none does. For an nrm referral the NRM referral itself is the notification."
            )
        },
    )
    is_child = fields.Boolean()
    local_authority_org_id = fields.String(
        allow_none=True,
        metadata={
            "description": (
                "A child's local authority: the children's services agency (GET /v1/directory/agencies) covering "
                "location.local_authority, resolved at referral and told of the child's progress; null otherwise."
            )
        },
    )
    received_at = fields.DateTime()
    updated_at = fields.DateTime()
    allocation = fields.Nested(AllocationSchema, allow_none=True)


class OfferHistorySchema(Schema):
    provider_id = fields.String()
    status = fields.String(metadata={"enum": ["pending", "accepted", "declined", "expired", "withdrawn"]})
    decline_reason = fields.String(allow_none=True)
    offered_at = fields.DateTime()
    respond_by = fields.DateTime(allow_none=True)
    responded_at = fields.DateTime(allow_none=True)
    offered_by = fields.String(metadata={"enum": ["routing", "coordinator"]})


class ReferralDetailSchema(ReferralSummarySchema):
    """The referral's progress (offers) and, for its own org and the provider it is allocated to only, its body."""

    offers = fields.List(fields.Nested(OfferHistorySchema))
    local_authority_name = fields.String(
        allow_none=True, metadata={"description": "The name of local_authority_org_id in the agency directory."}
    )

    referred_at = fields.DateTime()
    referrer = fields.Dict()
    subject = fields.Dict()
    exploitation = fields.List(fields.Dict())
    location = fields.Dict()
    risk = fields.Dict(allow_none=True)
    needs = fields.List(fields.String())
    consent = fields.Dict(allow_none=True)
    narrative = fields.String(allow_none=True)
    difficult_circumstances = fields.Boolean()


class ReferralQuerySchema(Schema):
    status = fields.String(validate=validate.OneOf(STATUSES))


class OfferByHandSchema(Schema):
    provider_id = fields.String(required=True, validate=validate.Regexp(PROVIDER_ID))


class RoutingSummarySchema(Schema):
    """What a coordinator needs to place a referral, and nothing that identifies the person."""

    is_child = fields.Boolean()
    pathway = fields.String()
    region = fields.String()
    local_authority = fields.String(allow_none=True)
    languages = fields.List(fields.String())
    interpreter_needed = fields.Boolean()
    sex = fields.String()
    exploitation_types = fields.List(fields.String())
    needs = fields.List(fields.String())
    immediate_danger = fields.Boolean()
    re_trafficking_risk = fields.String(allow_none=True)


class EscalationSchema(Schema):
    referral_id = fields.String()
    status = fields.String()
    reason = fields.String(metadata={"enum": ["no_eligible_provider", "none_accepted", "immediate_danger"]})
    raised_at = fields.DateTime()
    org_id = fields.String()
    summary = fields.Nested(RoutingSummarySchema)
    offers = fields.List(fields.Nested(OfferHistorySchema))


class ProviderInSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(1, 200))
    regions = fields.List(
        fields.String(validate=validate.OneOf(REGIONS)), required=True, validate=validate.Length(min=1)
    )
    languages = fields.List(fields.String(validate=_language), load_default=list)
    serves = fields.List(
        fields.String(validate=validate.OneOf(("adult", "child"))),
        required=True,
        validate=validate.Length(1, 2),
    )
    accepting = fields.Boolean(load_default=True)
    capacity = fields.Integer(required=True, validate=validate.Range(0, 100_000))
    sexes = fields.List(
        fields.String(validate=validate.OneOf(("female", "male", "non_binary"))),
        allow_none=True,
        load_default=None,
        validate=validate.Length(min=1),
        metadata={"description": "A sex-specific service lists whom it serves; omit to serve everyone."},
    )


class ProviderOutSchema(ProviderInSchema):
    id = fields.String()
    capacity_reported_at = fields.DateTime(allow_none=True)
    updated_at = fields.DateTime()


# --- the agency directory (issue 13): PUT /v1/agencies/{org_id}, GET /v1/directory/* ---------------------

# What an agency is: the org kinds of shared.auth that are agencies, and children's services (a local
# authority's department that leads for a child: Children Act 1989 s17 and s47, Working Together 2023).
AGENCY_KINDS = ("childrens_services", "local_authority", "police", "first_responder")
ONS_CODE = r"^[EWSN]\d{8}$"
MAX_LOCAL_AUTHORITY_CODES = 400  # the UK has about 360 local authorities


class AgencyInSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(1, 200))
    kind = fields.String(
        required=True,
        validate=validate.OneOf(AGENCY_KINDS),
        metadata={
            "description": (
                "childrens_services: a local authority's children's services, told of each child referred in "
                "the areas it covers; local_authority (its other services), police, first_responder."
            )
        },
    )
    local_authority_codes = fields.List(
        fields.String(validate=validate.Regexp(ONS_CODE, error="Not an ONS code such as E09000033.")),
        required=True,
        validate=validate.Length(1, MAX_LOCAL_AUTHORITY_CODES),
        metadata={"description": "The local authorities (ONS codes) it acts for: at least one."},
    )


class AgencyOutSchema(AgencyInSchema):
    org_id = fields.String()
    updated_at = fields.DateTime()


class DirectoryProviderSchema(Schema):
    """A provider as a charity may see it, to choose a receiving provider: its id and name."""

    id = fields.String()
    name = fields.String()


class DirectoryAgencySchema(Schema):
    """An agency as a charity may see it, to choose a receiving agency: its org id, name and kind."""

    org_id = fields.String()
    name = fields.String()
    kind = fields.String(metadata={"enum": list(AGENCY_KINDS)})


# --- rectification (issue 14): PATCH /v1/referrals/{id} --------------------------------------------------


class RectificationSchema(Schema):
    """A JSON Merge Patch (RFC 7396) of the referral's correctable sections: a key set to null is removed, an
    object merges key by key, anything else replaces. Any other key is refused (422 naming it). The merged
    referral is checked as a new referral is."""

    subject = fields.Dict(allow_none=True, metadata={"description": "Merged into the subject."})
    referrer = fields.Dict(allow_none=True, metadata={"description": "Merged into the referrer."})
    needs = fields.List(fields.Raw(), allow_none=True, metadata={"description": "Replaces the needs."})
    risk = fields.Dict(allow_none=True, metadata={"description": "Merged into the risk."})


class ReferralReadQuerySchema(Schema):
    purpose = fields.String(
        validate=validate.OneOf(("case_opening", "rectification")),
        metadata={
            "description": (
                "Why the provider holding the case reads it, recorded with the disclosure: case_opening (the "
                "default), or rectification (fetching it again after referral.rectified)."
            )
        },
    )
