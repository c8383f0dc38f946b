"""A charity's subject access route (UK GDPR Art. 15): everything this instance holds about the person of a
referral: its offers, the case and its referral copy, contacts, notes, risk flags, consent records, NRM
records, decisions and reconsiderations, clocks, transitions, handovers and the timeline (shared.subject_access
follows the foreign keys, so a table added later about a case joins by itself). A referral it never held: 200
with empty sections, so the collector can say "nothing held". And who has read a case (the access log,
shared.access_log), for the charity itself."""

from __future__ import annotations

from services.advocacy import domain, errors, models
from services.advocacy.web.context import instance, on_case, own, read
from shared import subject_access
from shared.access_log import AccessLogEntrySchema, of_subject, view
from shared.web import Blueprint, page

# Bookkeeping, staff records, and the blind search tokens (keyed hashes of the names, not readable).
SKIP = ("outbox", "inbox", "idempotency_keys", "advocates", "case_search_tokens", "access_log")

blp = Blueprint(
    "subject_access",
    __name__,
    url_prefix="/v1",
    description="Data protection: subject access (UK GDPR Art. 15), a DPO's copy; and who has read a case.",
)
blp.errorhandler(domain.CaseworkError)(errors.refused)


@blp.route("/subject-access/<referral_id>", methods=["GET"])
@subject_access.guarded
@blp.response(200, subject_access.SubjectAccessSchema)
@blp.alt_response(403, description="Not a platform DPO (org_kind ops) nor the platform's service token")
def subject_access_copy(referral_id: str):
    """Everything this charity holds about the person of this referral, one section per record kind (its
    table), each with its rows; empty sections when it holds nothing. For a platform DPO (`org_kind` `ops`) or
    the platform's service token, with the scope `referrals:erase`."""
    advocacy = instance()
    with advocacy.sessions.begin() as session:
        read(session, [referral_id], "subject_access", kind="referral")
        sections = subject_access.collect(session, models.Base, referral_id, skip=SKIP)
    return subject_access.answer("advocacy", referral_id, sections, provider_id=advocacy.provider_id)


@blp.route("/cases/<case_id>/access-log", methods=["GET"])
@own("cases:write")
@blp.response(200, AccessLogEntrySchema(many=True))
@blp.alt_response(404, description="No such case of this provider")
@blp.paginate()
def case_access_log(case_id: str, pagination_parameters):
    """Who has read this case, newest first: every read through this API and the advocate's page (who: `sub`
    and `org`; what; when; the purpose, the route that read; the trace id). For the charity's own token with
    `cases:write` (its coordinator's tools; an integration that only reads cases may not see who else did).
    This read is itself recorded, as `case.access-log`."""
    with on_case(case_id) as (advocacy, uow, case):
        rows = page(uow.session, of_subject(models.AccessLog, "case", case.id), pagination_parameters)
        return [view(row) for row in rows]
