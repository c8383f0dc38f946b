"""HTTP routes for a case's consent (casework.consent): the advocate records it here, the provider sends it to
intake, which owns consent. Thin: JSON in, a call in a unit of work, JSON out. A token of this provider only."""

from __future__ import annotations

import logging

from services.advocacy import domain, errors
from services.advocacy.models import CaseConsentRecord
from services.advocacy.web.context import on_case, own
from services.advocacy.web.schemas import ConsentCreateSchema, ConsentRecordSchema
from shared.auth import current_principal
from shared.web import Blueprint

log = logging.getLogger(__name__)

blp = Blueprint("consent", __name__, url_prefix="/v1", description="A case's consent records, sent to intake.")
blp.errorhandler(domain.CaseworkError)(errors.refused)


@blp.route("/cases/<case_id>/consent", methods=["POST"])
@own("cases:write")
@blp.arguments(ConsentCreateSchema)
@blp.response(201, ConsentRecordSchema)
@blp.alt_response(404, description="No such case of this provider")
@blp.alt_response(409, description="The case is closed (read-only)")
@blp.alt_response(422, description="A bad field, named: recipients on a purpose other than data_sharing, "
                  "obtained_at in the future, obtained_by not an advocate of this provider")  # fmt: skip
def record_consent(body, case_id: str):
    """Record the person's consent for one purpose; intake keeps it as the record in force
    (`case.consent_recorded`). Advocacy consent not given closes the case once intake confirms the withdrawal
    (`consent.withdrawn`), as a withdrawal the referrer records does."""
    with on_case(case_id) as (advocacy, uow, case):
        row = advocacy.continuity.consent.record(uow, case, actor=current_principal().sub, **body)
        view = _view(row)
    log.info("consent recorded", extra={"case_id": case_id, "purpose": body["purpose"]})
    return view


@blp.route("/cases/<case_id>/consent", methods=["GET"])
@own("cases:read")
@blp.response(200, ConsentRecordSchema(many=True))
@blp.alt_response(404, description="No such case of this provider")
def list_consent(case_id: str):
    """What the case has, oldest first: the advocate's records, and a withdrawal the referrer recorded at intake.
    The records in force are intake's (`GET /v1/referrals/{id}/consent` on intake)."""
    with on_case(case_id) as (advocacy, uow, case):
        return [_view(r) for r in uow.consents.of_case(case.id)]


def _view(record: CaseConsentRecord) -> dict:
    return {
        "id": record.id,
        "case_id": record.case_id,
        "purpose": record.purpose,
        "given": record.given,
        "obtained_at": record.obtained_at,
        "obtained_by": record.obtained_by,
        "interpreter_used": record.interpreter_used,
        "recipients": record.recipients or [],
        "source": record.source,
        "recorded_at": record.recorded_at,
    }
