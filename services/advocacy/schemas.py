"""The wire contract of advocacy (DESIGN 4 "advocacy"): one schema class per shape.

Unknown fields are rejected (marshmallow's default `unknown = RAISE`): nothing can be mass-assigned.
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from services.advocacy import domain

ISO_639_1 = validate.Regexp(r"^[a-z]{2}$", error="Not an ISO 639-1 code (two lower-case letters).")


class AdvocateCreateSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    email = fields.Email(required=True, validate=validate.Length(max=254))
    languages = fields.List(fields.String(validate=ISO_639_1), required=True, validate=validate.Length(min=1, max=20))
    max_caseload = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=100))


class AdvocateSchema(Schema):
    id = fields.String()
    name = fields.String()
    email = fields.String()
    languages = fields.List(fields.String())
    max_caseload = fields.Integer()
    caseload = fields.Integer()
    active = fields.Boolean()


class OfferQuerySchema(Schema):
    status = fields.String(validate=validate.OneOf(domain.OFFER_STATUSES))


class CaseQuerySchema(Schema):
    status = fields.String(validate=validate.OneOf(domain.CASE_STATUSES))


class OfferSummarySchema(Schema):
    """The minimised referral an offer carries: no names, dates of birth, contact or narrative."""

    org_id = fields.String(allow_none=True)
    external_reference = fields.String(allow_none=True)
    is_child = fields.Boolean(allow_none=True)
    pathway = fields.String(allow_none=True)
    region = fields.String(allow_none=True)
    local_authority = fields.String(allow_none=True)
    languages = fields.List(fields.String(), allow_none=True)
    interpreter_needed = fields.Boolean(allow_none=True)
    sex = fields.String(allow_none=True)
    exploitation_types = fields.List(fields.String(), allow_none=True)
    needs = fields.List(fields.String(), allow_none=True)
    immediate_danger = fields.Boolean(allow_none=True)
    re_trafficking_risk = fields.String(allow_none=True)


class OfferSchema(Schema):
    id = fields.String()
    referral_id = fields.String()
    status = fields.String()
    summary = fields.Nested(OfferSummarySchema)
    offered_at = fields.DateTime()
    respond_by = fields.DateTime(allow_none=True)
    responded_at = fields.DateTime(allow_none=True)
    decline_reason = fields.String(allow_none=True)
    decline_note = fields.String(allow_none=True)
    case_id = fields.String(allow_none=True)


class AcceptOfferSchema(Schema):
    advocate_id = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=64))


class DeclineOfferSchema(Schema):
    reason = fields.String(required=True, validate=validate.OneOf(domain.DECLINE_REASONS))
    note = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=2000))


class CaseAdvocateSchema(Schema):
    id = fields.String()
    name = fields.String()
    email = fields.String()


class TimelineEntrySchema(Schema):
    at = fields.DateTime()
    kind = fields.String()
    actor = fields.String()
    detail = fields.String()


class CaseSummarySchema(Schema):
    """A case in a list: without the disclosed referral (share the minimum, DESIGN 2)."""

    id = fields.String()
    referral_id = fields.String()
    offer_id = fields.String()
    status = fields.String()
    advocate = fields.Nested(CaseAdvocateSchema)
    opened_at = fields.DateTime()
    updated_at = fields.DateTime()


class CaseSchema(CaseSummarySchema):
    referral = fields.Dict(allow_none=True)  # null until intake discloses it after allocation
    timeline = fields.List(fields.Nested(TimelineEntrySchema))
