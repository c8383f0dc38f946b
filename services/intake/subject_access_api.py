"""intake's subject access route (UK GDPR Art. 15): everything intake holds about the person of a referral,
section by section (shared.subject_access): the referral (body and status), its consent records, its disclosures
(the record of recipients), offers, escalations, and any later table about a referral (rectifications, erasure
records) without an edit here. `referrals-sar` reads the recipients from it. And who has read a referral (the
access log, shared.access_log), for its referring organisation and the DPO."""

from __future__ import annotations

from services.intake import models
from services.intake.api import instance, read
from shared import subject_access
from shared.access_log import AccessLogEntrySchema, of_subject, view
from shared.auth import current_principal, requires
from shared.web import Blueprint, error_body, page

# Not the person's records: the relay's and consumer's bookkeeping, stored responses, and the directories.
SKIP = ("outbox", "inbox", "idempotency_keys", "providers", "agencies", "duty_to_notify_records", "access_log")

blp = Blueprint(
    "subject_access",
    __name__,
    url_prefix="/v1",
    description="Data protection: subject access (UK GDPR Art. 15), a DPO's copy; and who has read a referral.",
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
    read([referral_id], "subject_access")
    return subject_access.answer("intake", referral_id, sections)


@blp.route("/referrals/<referral_id>/access-log", methods=["GET"])
@requires("referrals:read", subject_access.SCOPE, any_of=True)
@blp.response(200, AccessLogEntrySchema(many=True))
@blp.alt_response(404, description="No such referral of your organisation (or, for a DPO, at all)")
@blp.paginate()
def referral_access_log(referral_id: str, pagination_parameters):
    """Who has read this referral at intake, newest first (who: `sub` and `org`; what; when; the purpose, as
    stated or the route that read; the trace id). For its referring organisation (`referrals:read`) and a
    platform DPO (`org_kind` `ops`, `referrals:erase`); anyone else is told it does not exist. This read is
    itself recorded, as `access_log`."""
    principal = current_principal()
    with instance().sessions.begin() as session:
        referral = session.get(models.Referral, referral_id)
        mine = referral is not None and referral.org_id == principal.org and principal.has("referrals:read")
        if referral is None or not (mine or subject_access.may_ask(principal)):
            raise NoSuchReferral(referral_id)
        read([referral.id], "access_log", session=session)
        rows = page(session, of_subject(models.AccessLog, "referral", referral.id), pagination_parameters)
        return [view(row) for row in rows]
