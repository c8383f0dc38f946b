"""A charity's subject access route (UK GDPR Art. 15): everything this instance holds about the person of a
referral: its offers, the case and its referral copy, contacts, notes, risk flags, consent records, NRM
records, decisions and reconsiderations, clocks, transitions, handovers and the timeline (shared.subject_access
follows the foreign keys, so a table added later about a case joins by itself). A referral it never held: 200
with empty sections, so the collector can say "nothing held"."""

from __future__ import annotations

from services.advocacy import models
from services.advocacy.web.context import instance
from shared import subject_access
from shared.web import Blueprint

# Bookkeeping, staff records, and the blind search tokens (keyed hashes of the names, not readable).
SKIP = ("outbox", "inbox", "idempotency_keys", "advocates", "case_search_tokens")

blp = Blueprint(
    "subject_access", __name__, url_prefix="/v1", description="Subject access (UK GDPR Art. 15): a DPO's copy."
)


@blp.route("/subject-access/<referral_id>", methods=["GET"])
@subject_access.guarded
@blp.response(200, subject_access.SubjectAccessSchema)
@blp.alt_response(403, description="Not a platform DPO (org_kind ops) nor the platform's service token")
def subject_access_copy(referral_id: str):
    """Everything this charity holds about the person of this referral, one section per record kind (its
    table), each with its rows; empty sections when it holds nothing. For a platform DPO (`org_kind` `ops`) or
    the platform's service token, with the scope `referrals:erase`."""
    advocacy = instance()
    with advocacy.sessions() as session:
        sections = subject_access.collect(session, models.Base, referral_id, skip=SKIP)
    return subject_access.answer("advocacy", referral_id, sections, provider_id=advocacy.provider_id)
