"""HTTP routes for provider handovers offered to this provider (issue 12 item 6): list them, accept one with
an advocate who has room, or decline it with a code. Thin: JSON in, a call to `continuity.handover.Handover`
in a unit of work, JSON out. A token of this provider only."""

from __future__ import annotations

import logging
from typing import Any

from services.advocacy import domain, errors
from services.advocacy.models import Handover
from services.advocacy.uow import AdvocacyUnitOfWork
from services.advocacy.web.context import instance, own, read
from services.advocacy.web.schemas import AcceptOfferSchema, DeclineOfferSchema, HandoverQuerySchema, HandoverSchema
from shared.auth import current_principal
from shared.web import Blueprint

log = logging.getLogger(__name__)

blp = Blueprint(
    "handovers",
    __name__,
    url_prefix="/v1",
    description="Cases other providers offer to hand over to this one: accepted within an advocate's cap, or declined.",
)
blp.errorhandler(domain.CaseworkError)(errors.refused)


@blp.route("/handovers", methods=["GET"])
@own("offers:respond", "cases:read", any_of=True)
@blp.arguments(HandoverQuerySchema, location="query")
@blp.response(200, HandoverSchema(many=True))
def list_handovers(query):
    """This provider's handovers awaiting an answer, soonest deadline first (`status` for the others)."""
    advocacy = instance()
    with advocacy.unit_of_work() as uow:
        handovers = uow.handovers.of_status(query["status"])
        read(uow.session, [h.id for h in handovers], "handover.summary", kind="handover")
        return [_view(uow, h) for h in handovers]


@blp.route("/handovers/<handover_id>/accept", methods=["POST"])
@own("offers:respond")
@blp.arguments(AcceptOfferSchema)
@blp.response(200, HandoverSchema)
@blp.alt_response(404, description="No such handover offered to this provider, or no such advocate")
@blp.alt_response(
    409,
    description="Already answered, past its deadline, or the advocate named (or every advocate) is inactive or "
    "at their maximum caseload: the message says which",
)
def accept_handover(body, handover_id: str):
    """Accept the handover; the case arrives from the sender and waits `opening` until intake moves the
    allocation. With no `advocate_id` the advocate is chosen as for offers (a shared language, then the least
    loaded); the place is taken now."""
    advocacy = instance()
    with advocacy.unit_of_work() as uow:
        handover = advocacy.continuity.handover.accept(
            uow, handover_id, actor=current_principal().sub, advocate_id=body.get("advocate_id")
        )
        view = _view(uow, handover)
    log.info("handover accepted", extra={"handover_id": handover_id, "provider_id": advocacy.provider_id})
    return view


@blp.route("/handovers/<handover_id>/decline", methods=["POST"])
@own("offers:respond")
@blp.arguments(DeclineOfferSchema)
@blp.response(200, HandoverSchema)
@blp.alt_response(404, description="No such handover offered to this provider")
@blp.alt_response(409, description="Already answered, or past its deadline")
def decline_handover(body, handover_id: str):
    """Decline with a decline code (the note stays here): the case stays with the sending provider."""
    advocacy = instance()
    with advocacy.unit_of_work() as uow:
        handover = advocacy.continuity.handover.decline(
            uow, handover_id, actor=current_principal().sub, reason=body["reason"], note=body.get("note")
        )
        view = _view(uow, handover)
    log.info("handover declined", extra={"handover_id": handover_id, "reason": body["reason"]})
    return view


def _view(uow: AdvocacyUnitOfWork, handover: Handover) -> dict[str, Any]:
    offer = uow.offers.get(f"{domain.HANDOVER_OFFER_PREFIX}{handover.id}")
    return {
        "id": handover.id,
        "referral_id": handover.referral_id,
        "from_provider_id": handover.from_provider_id,
        "status": handover.status,
        "summary": handover.summary,
        "offered_at": handover.offered_at,
        "respond_by": handover.respond_by,
        "responded_at": handover.responded_at,
        "advocate_id": handover.advocate_id,
        "decline_reason": handover.decline_reason,
        "decline_note": handover.decline_note,
        "case_id": offer.case_id if offer is not None else None,
    }
