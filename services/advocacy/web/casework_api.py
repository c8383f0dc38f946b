"""HTTP routes of one charity's instance for advocates, offers and cases: JSON in, a casework call in a unit of
work, JSON out (eShop's OrdersApi: the blueprint is a table of top-level functions).

Every route needs a token of this provider's organisation: an instance serves exactly one charity.
"""

from __future__ import annotations

import logging

from flask_smorest import abort
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from services.advocacy import domain, errors
from services.advocacy.models import Advocate, Case, Offer, TimelineEntry
from services.advocacy.web.context import instance, on_case, own, read
from services.advocacy.web.schemas import (
    AcceptOfferSchema,
    AdvocateCreateSchema,
    AdvocateSchema,
    CaseQuerySchema,
    CaseSchema,
    CaseSummarySchema,
    ClosureSchema,
    DeclineOfferSchema,
    OfferQuerySchema,
    OfferSchema,
)
from shared.auth import current_principal
from shared.web import Blueprint, page

log = logging.getLogger(__name__)

blp = Blueprint("advocacy", __name__, url_prefix="/v1", description="Advocates, offers and cases of one provider.")
blp.errorhandler(domain.CaseworkError)(errors.refused)


@blp.route("/advocates", methods=["POST"])
@own("cases:write")
@blp.arguments(AdvocateCreateSchema)
@blp.response(201, AdvocateSchema)
def create_advocate(body):
    advocacy = instance()
    try:
        with advocacy.unit_of_work() as uow:
            advocate = advocacy.continuity.casework.create_advocate(uow, **body)
    except IntegrityError:  # the same email created at the same moment by another request
        abort(409, message=f"an advocate with the email {body['email']} already exists")
    log.info("advocate created", extra={"advocate_id": advocate.id, "provider_id": advocacy.provider_id})
    return _advocate_view(advocate, 0)


@blp.route("/advocates", methods=["GET"])
@own("cases:read")
@blp.response(200, AdvocateSchema(many=True))
def list_advocates():
    with instance().unit_of_work() as uow:
        loads = uow.cases.caseloads()
        advocates = sorted(uow.advocates.all(), key=lambda a: (a.name, a.id))
        return [_advocate_view(a, loads.get(a.id, 0)) for a in advocates]


@blp.route("/advocates/<advocate_id>/deactivation", methods=["POST"])
@own("cases:write")
@blp.response(200, AdvocateSchema)
def deactivate_advocate(advocate_id: str):
    """Deactivate an advocate who leaves: refused (409) while they hold live cases, which must be handed over
    first. They then take no offers, and the provider's capacity is announced without them."""
    advocacy = instance()
    with advocacy.unit_of_work() as uow:
        advocate = advocacy.continuity.closure.deactivate_advocate(uow, advocate_id)
        view = _advocate_view(advocate, 0)
    log.info("advocate deactivated", extra={"advocate_id": advocate_id, "provider_id": advocacy.provider_id})
    return view


@blp.route("/offers", methods=["GET"])
@own("offers:respond", "cases:read", any_of=True)
@blp.arguments(OfferQuerySchema, location="query")
@blp.response(200, OfferSchema(many=True))
@blp.paginate()
def list_offers(query, pagination_parameters):
    advocacy = instance()
    where = [Offer.provider_id == advocacy.provider_id]
    if query.get("status"):
        where.append(Offer.status == query["status"])
    statement = (
        select(Offer).where(*where).options(selectinload(Offer.case)).order_by(Offer.offered_at.desc(), Offer.id)
    )
    with advocacy.sessions.begin() as session:
        offers = page(session, statement, pagination_parameters)
        read(session, [o.id for o in offers], "offer.summary", kind="offer")
        return [_offer_view(offer) for offer in offers]


@blp.route("/offers/<offer_id>/accept", methods=["POST"])
@own("offers:respond")
@blp.arguments(AcceptOfferSchema)
@blp.response(200, CaseSchema)
def accept_offer(body, offer_id: str):
    advocacy = instance()
    with advocacy.unit_of_work() as uow:
        case = advocacy.continuity.casework.accept_offer(
            uow, offer_id, actor=current_principal().sub, advocate_id=body.get("advocate_id")
        )
        view = _case_view(case, uow.timeline.of_offer(case.offer_id))
    log.info("offer accepted", extra={"offer_id": offer_id, "case_id": view["id"], "provider_id": advocacy.provider_id})
    return view


@blp.route("/offers/<offer_id>/decline", methods=["POST"])
@own("offers:respond")
@blp.arguments(DeclineOfferSchema)
@blp.response(200, OfferSchema)
def decline_offer(body, offer_id: str):
    advocacy = instance()
    with advocacy.unit_of_work() as uow:
        offer = advocacy.continuity.casework.decline_offer(
            uow, offer_id, actor=current_principal().sub, reason=body["reason"], note=body.get("note")
        )
        view = _offer_view(offer)
    log.info(
        "offer declined", extra={"offer_id": offer_id, "reason": body["reason"], "provider_id": advocacy.provider_id}
    )
    return view


@blp.route("/cases", methods=["GET"])
@own("cases:read")
@blp.arguments(CaseQuerySchema, location="query")
@blp.response(200, CaseSummarySchema(many=True))
@blp.paginate()
def list_cases(query, pagination_parameters):
    advocacy = instance()
    where = [Case.provider_id == advocacy.provider_id]
    if query.get("status"):
        where.append(Case.status == query["status"])
    statement = select(Case).where(*where).options(selectinload(Case.advocate)).order_by(Case.opened_at.desc(), Case.id)
    with advocacy.sessions.begin() as session:
        cases = page(session, statement, pagination_parameters)
        read(session, [c.id for c in cases], "case.summary")
        return [_case_view(case) for case in cases]


@blp.route("/cases/<case_id>", methods=["GET"])
@own("cases:read")
@blp.response(200, CaseSchema)
def get_case(case_id: str):
    with on_case(case_id) as (advocacy, uow, case):
        return _case_view(case, uow.timeline.of_offer(case.offer_id))


@blp.route("/cases/<case_id>/closure", methods=["POST"])
@own("cases:write")
@blp.arguments(ClosureSchema)
@blp.response(200, CaseSchema)
def close_case(body, case_id: str):
    """Close an open case with its outcome: its clocks stop, open transitions are cancelled, the advocate's
    place is freed and the referrer hears `case.closed` (the code only; the note stays here). A closed case is
    read-only: any later write to it, this one included, is 409."""
    with on_case(case_id) as (advocacy, uow, case):
        advocacy.continuity.closure.close(
            uow, case, outcome=body["outcome"], note=body.get("note"), actor=current_principal().sub
        )
        view = _case_view(case, uow.timeline.of_offer(case.offer_id))
    log.info("case closed", extra={"case_id": case_id, "outcome": body["outcome"], "provider_id": advocacy.provider_id})
    return view


def _advocate_view(advocate: Advocate, caseload: int) -> dict:
    return {
        "id": advocate.id,
        "name": advocate.name,
        "email": advocate.email,
        "languages": advocate.languages,
        "max_caseload": advocate.max_caseload,
        "caseload": caseload,
        "active": advocate.active,
    }


def _offer_view(offer: Offer) -> dict:
    return {
        "id": offer.id,
        "referral_id": offer.referral_id,
        "status": offer.status,
        "summary": offer.summary,
        "offered_at": offer.offered_at,
        "respond_by": offer.respond_by,
        "responded_at": offer.responded_at,
        "decline_reason": offer.decline_reason,
        "decline_note": offer.decline_note,
        "case_id": offer.case_id,
    }


def _case_view(case: Case, timeline: list[TimelineEntry] | None = None) -> dict:
    """A case in a list (`timeline` None), or in full: with the referral and its timeline."""
    view = {
        "id": case.id,
        "referral_id": case.referral_id,
        "offer_id": case.offer_id,
        "status": case.status,
        "advocate": {"id": case.advocate.id, "name": case.advocate.name, "email": case.advocate.email},
        "opened_at": case.opened_at,
        "updated_at": case.updated_at,
        "closed_at": case.closed_at,
        "local_authority_org_id": case.local_authority_org_id,
        "local_authority_name": case.local_authority_name,
    }
    if timeline is not None:
        view["referral"] = case.referral
        view["timeline"] = [
            {"at": entry.at, "kind": entry.kind, "actor": entry.actor, "detail": entry.detail} for entry in timeline
        ]
    return view
