"""intake's subject access route (UK GDPR Art. 15): everything intake holds about the person of a referral,
section by section (shared.subject_access): the referral (body and status), its consent records, its disclosures
(the record of recipients), offers, escalations, and any later table about a referral (rectifications, erasure
records) without an edit here. `referrals-sar` reads the recipients from it."""

from __future__ import annotations

from services.intake import models
from services.intake.api import instance
from shared import subject_access
from shared.web import Blueprint, error_body

# Not the person's records: the relay's and consumer's bookkeeping, stored responses, and the directories.
SKIP = ("outbox", "inbox", "idempotency_keys", "providers", "agencies", "duty_to_notify_records")

blp = Blueprint(
    "subject_access", __name__, url_prefix="/v1", description="Subject access (UK GDPR Art. 15): a DPO's copy."
)


class NoSuchReferral(Exception):
    pass


blp.errorhandler(NoSuchReferral)(lambda error: error_body(404, "No such referral."))


@blp.route("/subject-access/<referral_id>", methods=["GET"])
@subject_access.guarded
@blp.response(200, subject_access.SubjectAccessSchema)
@blp.alt_response(403, description="Not a platform DPO (org_kind ops) nor the platform's service token")
@blp.alt_response(404, description="No such referral")
def subject_access_copy(referral_id: str):
    """Everything intake holds about the person of this referral, one section per record kind (its table),
    each with its rows; the `disclosures` and `offers` sections name every charity that was sent something.
    For a platform DPO (`org_kind` `ops`) or the platform's service token, with the scope `referrals:erase`."""
    with instance().sessions() as session:
        if session.get(models.Referral, referral_id) is None:
            raise NoSuchReferral(referral_id)
        sections = subject_access.collect(session, models.Base, referral_id, root="referrals", skip=SKIP)
    return subject_access.answer("intake", referral_id, sections)
