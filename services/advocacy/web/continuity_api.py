"""HTTP routes for continuity of care: a case's NRM record and clocks, and its transitions. Thin: JSON in, a
call to `continuity.nrm.NrmRecords` or `continuity.transitions.Transitions` in a unit of work, JSON out. A
token of this provider only."""

from __future__ import annotations

import functools
import logging

from sqlalchemy import select

from services.advocacy import domain, errors
from services.advocacy.continuity.wall_clock import today
from services.advocacy.models import Case, Transition
from services.advocacy.uow import AdvocacyUnitOfWork
from services.advocacy.web import records
from services.advocacy.web.context import instance, on_case, own, read
from services.advocacy.web.schemas import (
    DecisionCreateSchema,
    DecisionSchema,
    NrmRecordSchema,
    NrmUpdateSchema,
    ReconsiderationCreateSchema,
    ReconsiderationSchema,
    TransitionCompletionSchema,
    TransitionCreateSchema,
    TransitionQuerySchema,
    TransitionSchema,
    TransitionUpdateSchema,
)
from shared.auth import current_principal
from shared.web import Blueprint

log = logging.getLogger(__name__)

blp = Blueprint(
    "continuity",
    __name__,
    url_prefix="/v1",
    description="Continuity of care: a case's NRM record, its clocks, and its planned transitions.",
)
blp.errorhandler(domain.CaseworkError)(functools.partial(errors.refused, overrides=errors.NAMED_IN_A_BODY))


@blp.route("/cases/<case_id>/nrm", methods=["GET"])
@own("cases:read")
@blp.response(200, NrmRecordSchema)
def get_nrm(case_id: str):
    """The case's NRM record: reference, decisions, reconsideration requests and clocks."""
    advocacy = instance()
    with advocacy.unit_of_work() as uow:
        case = advocacy.continuity.casework.case(uow, case_id)
        read(uow.session, [case.id], "case.nrm")
        return _nrm_view(uow, case)


@blp.route("/cases/<case_id>/nrm", methods=["PUT"])
@own("cases:write")
@blp.arguments(NrmUpdateSchema)
@blp.response(200, NrmRecordSchema)
def put_nrm(body, case_id: str):
    """Record the NRM reference the competent authority gave."""
    with on_case(case_id) as (advocacy, uow, case):
        advocacy.continuity.nrm.set_reference(uow, case, body["nrm_reference"], actor=current_principal().sub)
        return _nrm_view(uow, case)


@blp.route("/cases/<case_id>/nrm/decisions", methods=["POST"])
@own("cases:write")
@blp.arguments(DecisionCreateSchema)
@blp.response(201, DecisionSchema)
def record_decision(body, case_id: str):
    """Record an RG or CG decision: it stops the clocks that waited for it and starts the next ones
    (a positive CG also plans the `move_on` transition)."""
    with on_case(case_id) as (advocacy, uow, case):
        decision = advocacy.continuity.nrm.record_decision(uow, case, actor=current_principal().sub, **body)
        view = records.decision_view(decision)
    log.info("nrm decision recorded", extra={"case_id": case_id, "stage": body["stage"]})
    return view


@blp.route("/cases/<case_id>/nrm/reconsiderations", methods=["POST"])
@own("cases:write")
@blp.arguments(ReconsiderationCreateSchema)
@blp.response(201, ReconsiderationSchema)
def request_reconsideration(body, case_id: str):
    """Record a request for reconsideration of a decision; its outcome is recorded as a new decision."""
    with on_case(case_id) as (advocacy, uow, case):
        request = advocacy.continuity.nrm.request_reconsideration(uow, case, actor=current_principal().sub, **body)
        return records.reconsideration_view(request)


@blp.route("/cases/<case_id>/transitions", methods=["GET"])
@own("cases:read")
@blp.response(200, TransitionSchema(many=True))
def list_case_transitions(case_id: str):
    with on_case(case_id) as (advocacy, uow, case):
        return [records.transition_view(t) for t in uow.transitions.of_case(case.id)]


@blp.route("/cases/<case_id>/transitions", methods=["POST"])
@own("cases:write")
@blp.arguments(TransitionCreateSchema)
@blp.response(201, TransitionSchema)
def plan_transition(body, case_id: str):
    """Plan a transition. A relocation keeps the advocate; only an advocate_handover changes it."""
    with on_case(case_id) as (advocacy, uow, case):
        transition = advocacy.continuity.transitions.plan(uow, case, actor=current_principal().sub, **body)
        return records.transition_view(transition)


@blp.route("/cases/<case_id>/transitions/<transition_id>", methods=["PATCH"])
@own("cases:write")
@blp.arguments(TransitionUpdateSchema)
@blp.response(200, TransitionSchema)
def update_transition(body, case_id: str, transition_id: str):
    """Tick checklist items, or move the planned date."""
    with on_case(case_id) as (advocacy, uow, case):
        transition = advocacy.continuity.transitions.update(
            uow,
            case,
            transition_id,
            actor=current_principal().sub,
            ticks=body.get("checklist"),
            planned_for=body.get("planned_for"),
        )
        return records.transition_view(transition)


@blp.route("/cases/<case_id>/transitions/<transition_id>/completion", methods=["POST"])
@own("cases:write")
@blp.arguments(TransitionCompletionSchema)
@blp.response(200, TransitionSchema)
def complete_transition(body, case_id: str, transition_id: str):
    """Complete a transition whose checklist is done. An advocate_handover reassigns the case; a
    provider_handover is offered to the receiving provider (case.handover_offered; 409 when already offered)
    and stays `in_progress`: it completes, and the case leaves, when that provider accepts; a relocation with
    a `new_region` changes the case's region (422 naming the field for a region not served without
    receiving_provider_id). A turning_18 one takes
    the young person's `decision` (required; 422 on any other kind): `consent_given` records advocacy consent
    (sent to intake) and the case continues; `consent_refused` completes it with that outcome and closes the
    case `declined_adult_support_at_18`."""
    with on_case(case_id) as (advocacy, uow, case):
        transition = advocacy.continuity.consent.complete_transition(
            uow, case, transition_id, actor=current_principal().sub, decision=body.get("decision")
        )
        return records.transition_view(transition)


@blp.route("/transitions", methods=["GET"])
@own("cases:read")
@blp.arguments(TransitionQuerySchema, location="query")
@blp.response(200, TransitionSchema(many=True))
@blp.paginate()
def list_transitions(query, pagination_parameters):
    """The provider's transitions, soonest first (filter by `status`, e.g. `planned`)."""
    advocacy = instance()
    where = [Transition.provider_id == advocacy.provider_id]
    if query.get("status"):
        where.append(Transition.status == query["status"])
    with advocacy.sessions.begin() as session:
        rows = session.scalars(select(Transition).where(*where).order_by(Transition.planned_for, Transition.id)).all()
        pagination_parameters.item_count = len(rows)
        first = pagination_parameters.first_item
        shown = rows[first : first + pagination_parameters.page_size]
        read(session, [t.case_id for t in shown], "case.transitions")
        return [records.transition_view(t) for t in shown]


def _nrm_view(uow: AdvocacyUnitOfWork, case: Case) -> dict:
    advocacy = instance()
    return records.nrm_view(
        advocacy.continuity.nrm.record(uow, case),
        uow.nrm.decisions_of(case.id),
        uow.nrm.reconsiderations_of(case.id),
        uow.clocks.of_case(case.id),
        today(advocacy.continuity.wall_clock),
    )
