"""The page's inbox (`/offers`) shows the provider handovers offered to this provider beside its offers, for a
coordinator to accept or decline with the session's CSRF token (issue 12 item 6)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from test_advocacy_continuity_page import (  # the same page fixture and sign-in
    PROVIDER,
    oidc_sign_in,
    page,  # noqa: F401 - the `page` fixture
)

from services.advocacy import domain
from services.advocacy.models import Handover, Outbox

SUMMARY = {"org_id": "met-police", "is_child": False, "pathway": "nrm", "region": "wales", "languages": ["cy"]}


def offered(app, handover_id: str) -> None:
    now = datetime.now(UTC)
    with app.extensions["advocacy"].unit_of_work() as uow:
        handover = Handover(
            id=handover_id,
            provider_id=PROVIDER,
            from_provider_id="charity-from",
            referral_id=f"r-{handover_id}",
            from_case_id=f"c-{handover_id}",
            status=domain.HANDOVER_PENDING,
            summary=SUMMARY,
            offered_at=now,
            respond_by=now + timedelta(hours=72),
            received_at=now,
        )
        uow.handovers.add(handover)


def test_the_inbox_lists_handovers_for_a_coordinator_who_accepts_or_declines_them(page):  # noqa: F811
    app, idp = page
    offered(app, "h-accept")
    offered(app, "h-decline")
    kalo, _ = oidc_sign_in(app, idp, "kalo@p.example")
    assert kalo.get("/offers").status_code == 403  # a coordinator allocates new work
    lead, _ = oidc_sign_in(app, idp, "sa@p.example")
    html = lead.get("/offers").get_data(as_text=True)
    assert 'data-handover-id="h-accept"' in html and "Handover from charity-from" in html and "<dd>cy</dd>" in html
    token = re.search(r'name="csrf_token" value="([^"]+)"', html)[1]
    assert lead.post("/handovers/h-decline/decline", data={"reason": "no_capacity"}).status_code == 400  # no CSRF
    done = lead.post("/handovers/h-decline/decline", data={"reason": "no_capacity", "csrf_token": token},
                     follow_redirects=True)  # fmt: skip
    assert "Handover declined." in done.get_data(as_text=True)
    done = lead.post("/handovers/h-accept/accept", data={"advocate_id": "", "csrf_token": token}, follow_redirects=True)
    assert "Handover accepted." in done.get_data(as_text=True)
    again = lead.post("/handovers/h-accept/accept", data={"csrf_token": token}, follow_redirects=True)
    assert "no longer be answered" in again.get_data(as_text=True)
    with app.extensions["advocacy"].sessions.begin() as session:
        states = {h.id: h.status for h in session.scalars(select(Handover))}
        sent = [row.type for row in session.scalars(select(Outbox))]
    assert states == {"h-accept": "accepted", "h-decline": "declined"}
    assert {"case.handover_accepted", "case.handover_declined"} <= set(sent)
    assert "data-handover-id" not in lead.get("/offers").get_data(as_text=True)
