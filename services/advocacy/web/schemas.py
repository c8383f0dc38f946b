"""The wire contract of advocacy (DESIGN 4 "advocacy"): one schema class per shape.

Unknown fields are rejected (marshmallow's default `unknown = RAISE`): nothing can be mass-assigned.
"""

from __future__ import annotations

from datetime import UTC

from marshmallow import Schema, fields, validate

from contracts.events import REGIONS, RISK_KINDS, RISK_LEVELS
from services.advocacy import domain
from services.advocacy.casework import contacts
from services.advocacy.continuity import deadlines

ISO_639_1 = validate.Regexp(r"^[a-z]{2}$", error="Not an ISO 639-1 code (two lower-case letters).")


class AdvocateCreateSchema(Schema):
    # The work name travels in offer.accepted (contracts.events.AdvocateContact): no control characters.
    name = fields.String(
        required=True,
        validate=validate.Regexp(
            r"^[^\x00-\x1f\x7f]{1,200}$", error="1 to 200 characters, none of them control characters."
        ),
    )
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


class ClosureSchema(Schema):
    outcome = fields.String(required=True, validate=validate.OneOf(domain.CLOSURE_OUTCOMES))
    # Kept on the case's timeline (500 characters with its outcome), never in an event.
    note = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=400))


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
    closed_at = fields.DateTime(allow_none=True)
    local_authority_org_id = fields.String(
        allow_none=True,
        metadata={
            "description": (
                "A child's local authority (its children's services), resolved by intake from the child's ONS "
                "code: told of the referral, allocation, turning 18, lost contact and high risk. Null for an adult."
            )
        },
    )
    local_authority_name = fields.String(allow_none=True, metadata={"description": "Its name in intake's directory."})


class CaseSchema(CaseSummarySchema):
    referral = fields.Dict(allow_none=True)  # null until intake discloses it after allocation
    timeline = fields.List(fields.Nested(TimelineEntrySchema))


# --- continuity of care (issue 4): NRM record, clocks, transitions ---------------------------------------


class NrmUpdateSchema(Schema):
    nrm_reference = fields.String(required=True, allow_none=True, validate=validate.Length(min=1, max=64))


class DecisionCreateSchema(Schema):
    stage = fields.String(required=True, validate=validate.OneOf(deadlines.STAGES))
    outcome = fields.String(required=True, validate=validate.OneOf(deadlines.OUTCOMES))
    decided_on = fields.Date(required=True)
    on_reconsideration = fields.Boolean(load_default=False)


class DecisionSchema(Schema):
    id = fields.String()
    stage = fields.String()
    outcome = fields.String()
    decided_on = fields.Date()
    on_reconsideration = fields.Boolean()
    recorded_by = fields.String()
    recorded_at = fields.DateTime()


class ReconsiderationCreateSchema(Schema):
    decision_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    requested_on = fields.Date(required=True)


class ReconsiderationSchema(Schema):
    id = fields.String()
    decision_id = fields.String()
    requested_on = fields.Date()
    recorded_by = fields.String()
    recorded_at = fields.DateTime()


class ClockSchema(Schema):
    id = fields.String()
    kind = fields.String(metadata={"enum": list(deadlines.CLOCK_KINDS)})
    nature = fields.String(
        metadata={
            "enum": list(deadlines.NATURES),
            "description": "deadline: someone must act by `due_on`; minimum: nothing may happen before it; "
            "support_end: support stops then unless extended.",
        }
    )
    state = fields.String(
        metadata={
            "enum": ["running", "due_soon", "breached", "stopped", "reached", "ended"],
            "description": "deadline: running, due_soon, breached or stopped; minimum: running, then reached; "
            "support_end: running, then ended. Any clock is stopped once what it waited for happened.",
        }
    )
    starts_on = fields.Date()
    due_on = fields.Date()
    notice_on = fields.Date()
    basis = fields.String()
    policy_version = fields.String()
    transition_id = fields.String(allow_none=True)
    due_soon_fired_at = fields.DateTime(allow_none=True)
    breached_fired_at = fields.DateTime(allow_none=True)
    stopped_at = fields.DateTime(allow_none=True)
    stopped_reason = fields.String(allow_none=True)


class NrmRecordSchema(Schema):
    case_id = fields.String()
    nrm_reference = fields.String(allow_none=True)
    referred_on = fields.Date(allow_none=True)
    region = fields.String(allow_none=True)
    decisions = fields.List(fields.Nested(DecisionSchema))
    reconsiderations = fields.List(fields.Nested(ReconsiderationSchema))
    clocks = fields.List(fields.Nested(ClockSchema))


class TransitionCreateSchema(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(domain.TRANSITION_KINDS))
    planned_for = fields.Date(required=True)
    receiving_agency = fields.String(  # an organisation id, as events carry it (contracts.events.OrgId)
        load_default=None,
        allow_none=True,
        validate=validate.Regexp(
            r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$", error="An organisation id, e.g. leeds-city-council."
        ),
        metadata={
            "description": "The receiving agency's organisation id on the platform (gets transition.* webhooks)."
        },
    )
    receiving_provider_id = fields.String(  # a provider id (contracts.events.ProviderId)
        load_default=None,
        allow_none=True,
        validate=validate.Regexp(r"^[a-z0-9][a-z0-9-]{1,62}$", error="A provider id: 2-63 of a-z, 0-9 and -."),
    )
    to_advocate_id = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=64))
    new_region = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.OneOf(REGIONS),
        metadata={
            "description": "A relocation's destination: on completion the case's region, and that nation's NRM "
            "policy, change (a region this provider does not serve also needs receiving_provider_id)."
        },
    )


# The items an update may tick, as properties: the OpenAPI document states them (a dict's keys it cannot).
ChecklistTicksSchema = Schema.from_dict(
    {item: fields.Boolean() for item in domain.CHECKLIST_ITEMS}, name="ChecklistTicks"
)


class TransitionUpdateSchema(Schema):
    checklist = fields.Nested(ChecklistTicksSchema)
    planned_for = fields.Date(load_default=None)


class TransitionQuerySchema(Schema):
    status = fields.String(validate=validate.OneOf(domain.TRANSITION_STATUSES))


class TransitionSchema(Schema):
    id = fields.String()
    case_id = fields.String()
    kind = fields.String()
    status = fields.String()
    planned_for = fields.Date()
    date_basis = fields.String(metadata={"enum": ["exact", "approximate"]})
    receiving_agency = fields.String(allow_none=True)
    receiving_provider_id = fields.String(allow_none=True)
    to_advocate_id = fields.String(allow_none=True)
    checklist = fields.Dict(keys=fields.String(), values=fields.Boolean())
    origin = fields.String()
    created_by = fields.String()
    created_at = fields.DateTime()
    completed_at = fields.DateTime(allow_none=True)
    missed_at = fields.DateTime(allow_none=True)
    new_region = fields.String(allow_none=True)
    offered_at = fields.DateTime(allow_none=True, metadata={"description": "A provider_handover offered then"})
    respond_by = fields.DateTime(allow_none=True, metadata={"description": "The receiving provider answers by"})
    outcome = fields.String(
        allow_none=True,
        metadata={"description": "How a provider_handover ended: accepted, `declined: <decline code>`, unanswered"},
    )
    decision = fields.String(
        allow_none=True,
        metadata={"enum": list(domain.TURNING_18_DECISIONS), "description": "turning_18's: the young person's"},
    )


# --- consent (issue 12 item 4): the case's records, sent to intake; turning_18's decision ---------------


class ConsentCreateSchema(Schema):
    purpose = fields.String(required=True, validate=validate.OneOf(("nrm_referral", "advocacy", "data_sharing")))
    given = fields.Boolean(required=True)
    obtained_at = fields.AwareDateTime(required=True, default_timezone=UTC)
    obtained_by = fields.String(
        validate=validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$", error="An advocate's id."),
        metadata={"description": "The id of the advocate who obtained it (the case's advocate when omitted)."},
    )
    interpreter_used = fields.Boolean(load_default=False)
    recipients = fields.List(
        fields.String(validate=validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$", error="An organisation id.")),
        load_default=list,
        validate=validate.Length(max=50),
        metadata={"description": "Organisation ids the person agreed may read the referral: data_sharing only."},
    )


class ConsentRecordSchema(Schema):
    id = fields.String()
    case_id = fields.String()
    purpose = fields.String(metadata={"enum": ["nrm_referral", "advocacy", "data_sharing"]})
    given = fields.Boolean()
    obtained_at = fields.DateTime()
    obtained_by = fields.String()
    interpreter_used = fields.Boolean()
    recipients = fields.List(fields.String())
    source = fields.String(metadata={"enum": ["advocate", "intake"]})
    recorded_at = fields.DateTime()


class TransitionCompletionSchema(Schema):
    decision = fields.String(
        load_default=None,
        validate=validate.OneOf(domain.TURNING_18_DECISIONS),
        metadata={"description": "turning_18 only, and required there: the young person's decision."},
    )


# --- provider handovers offered to this provider (issue 12 item 6) ---------------------------------------


class HandoverQuerySchema(Schema):
    status = fields.String(
        load_default=domain.HANDOVER_PENDING,
        validate=validate.OneOf(domain.HANDOVER_STATUSES),
        metadata={"description": "Which handovers: those awaiting an answer when omitted."},
    )


class HandoverSchema(Schema):
    """A case another provider offers to hand over: the minimised summary an offer carries, to decide on."""

    id = fields.String()
    referral_id = fields.String()
    from_provider_id = fields.String()
    status = fields.String(metadata={"enum": list(domain.HANDOVER_STATUSES)})
    summary = fields.Nested(OfferSummarySchema)
    offered_at = fields.DateTime()
    respond_by = fields.DateTime()
    responded_at = fields.DateTime(allow_none=True)
    advocate_id = fields.String(allow_none=True)
    decline_reason = fields.String(allow_none=True)
    decline_note = fields.String(allow_none=True)
    case_id = fields.String(allow_none=True, metadata={"description": "The case here, once accepted"})


# --- an advocate's day (issue 13 items 2-3): the contact log, notes and risk flags -----------------------
# Their notes are special-category: kept at the charity, never in an event, a log line or the timeline.

CONTACT_METHODS, CONTACT_OUTCOMES = contacts.METHODS, contacts.OUTCOMES


class ContactCreateSchema(Schema):
    at = fields.AwareDateTime(
        required=True, default_timezone=UTC, metadata={"description": "When: not in the future (422)."}
    )
    method = fields.String(required=True, validate=validate.OneOf(CONTACT_METHODS))
    outcome = fields.String(
        required=True,
        validate=validate.OneOf(CONTACT_OUTCOMES),
        metadata={"description": "Only `reached` is a successful contact (it ends a no-contact episode)."},
    )
    interpreter_used = fields.Boolean(required=True)
    note = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=10_000))


class ContactSchema(Schema):
    id = fields.String()
    case_id = fields.String()
    at = fields.DateTime()
    method = fields.String(metadata={"enum": list(CONTACT_METHODS)})
    outcome = fields.String(metadata={"enum": list(CONTACT_OUTCOMES)})
    interpreter_used = fields.Boolean()
    note = fields.String(allow_none=True)
    recorded_by = fields.String()
    recorded_at = fields.DateTime()


class NoteCreateSchema(Schema):
    text = fields.String(required=True, validate=validate.Length(min=1, max=10_000))


class NoteSchema(Schema):
    id = fields.String()
    case_id = fields.String()
    text = fields.String()
    written_by = fields.String()
    written_at = fields.DateTime()


class RiskCreateSchema(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(RISK_KINDS))
    level = fields.String(
        required=True,
        validate=validate.OneOf(RISK_LEVELS),
        metadata={"description": "`high` publishes `case.risk_raised` (ids, kind and level) at once."},
    )
    review_on = fields.Date(required=True, metadata={"description": "The date to review it by: not in the past."})
    note = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=10_000))


class RiskSchema(Schema):
    id = fields.String()
    case_id = fields.String()
    kind = fields.String(metadata={"enum": list(RISK_KINDS)})
    level = fields.String(metadata={"enum": list(RISK_LEVELS)})
    review_on = fields.Date()
    note = fields.String(allow_none=True)
    raised_by = fields.String()
    raised_at = fields.DateTime()
