"""notifications' subject access route (UK GDPR Art. 15): the referral's holder row (who referred it, who
holds it), its deliveries (their bodies: ids and codes) and the subscriptions that received them (without
their signing secrets). A referral notifications never heard of: 200 with empty sections. The answer is the one
read of a person's records here that the access log keeps (shared.access_log): the rest of notifications holds
org ids, referral ids, event codes and webhook endpoints, no personal data."""

from __future__ import annotations

import json

from services.notifications import models
from services.notifications.api import instance
from shared import access_log, subject_access
from shared.web import Blueprint

SKIP = ("outbox", "inbox", "idempotency_keys", "access_log")
SECRETS = ("secret", "previous_secret", "previous_secret_expires_at")

blp = Blueprint(
    "subject_access", __name__, url_prefix="/v1", description="Subject access (UK GDPR Art. 15): a DPO's copy."
)


@blp.route("/subject-access/<referral_id>", methods=["GET"])
@subject_access.guarded
@blp.response(200, subject_access.SubjectAccessSchema)
@blp.alt_response(403, description="Not a platform DPO (org_kind ops) nor the platform's service token")
def subject_access_copy(referral_id: str):
    """What notifications holds about the person of this referral: `referral_owners` (its holder row),
    `deliveries` (each webhook's body, ids and codes) and `subscriptions` (those that received them). Empty
    sections when it holds nothing. For a platform DPO (`org_kind` `ops`) or the platform's service token, with
    the scope `referrals:erase`."""
    with instance().sessions.begin() as session:
        access_log.record(session, models.AccessLog, "referral", [referral_id], "subject_access")
        sections = subject_access.collect(session, models.Base, referral_id, skip=(*SKIP, "subscriptions"))
        for delivery in sections.get("deliveries", []):  # an erased delivery's body is empty: nothing to parse
            delivery["payload"] = json.loads(delivery["payload"]) if delivery["payload"] else None
        received = {d["subscription_id"] for d in sections.get("deliveries", [])}
        table = models.Subscription.__table__
        sections["subscriptions"] = subject_access.rows_of(session, table, received, hidden=SECRETS)  # type: ignore[arg-type]
    return subject_access.answer("notifications", referral_id, sections)
