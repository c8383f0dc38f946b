"""The coordinator's caseload page lists what needs attention (issue 13 item 3): a case nobody has reached for
longer than the no-contact rule (found by the scheduler, time passed in) and a high risk flag; an advocate's
own caseload has no such list, and a reached contact takes the case off it."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from services.advocacy.continuity.scheduler import ClockScheduler
from services.advocacy.continuity.wall_clock import FixedClock
from services.advocacy.models import PageSession
from services.advocacy.web import auth
from support.advocacy import PROVIDER, FakeIntake, accepted_case, add_advocate, confirmed, deliver


def signed_in(advocacy, advocate_id: str):
    client = advocacy.client.application.test_client()
    now = datetime.now(UTC)
    with advocacy.sessions.begin() as db:  # a server-side page session (web.auth), as sign-in makes one
        session_id = secrets.token_urlsafe(16)
        db.add(PageSession(id=session_id, sub=advocate_id, created_at=now, expires_at=now + timedelta(hours=1)))
    with client.session_transaction() as session:
        session[auth.SESSION_ID] = session_id
        session[auth.SESSION_CSRF] = "synthetic-csrf"
    return client


def caseload(advocacy, advocate_id: str) -> str:
    response = signed_in(advocacy, advocate_id).get("/caseload")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_the_coordinator_sees_lost_contact_and_high_risks_under_needs_attention(advocacy):
    case = accepted_case(advocacy)
    deliver(advocacy, confirmed(case), intake=FakeIntake())
    high = {"kind": "exploiters_nearby", "level": "high", "review_on": "2099-01-01"}
    response = advocacy.client.post(f"/v1/cases/{case['id']}/risks", json=high, headers=advocacy.headers)
    assert response.status_code == 201, response.get_json()
    clock = FixedClock(datetime.now(UTC) + timedelta(days=15))
    scheduler = ClockScheduler(advocacy.unit_of_work, PROVIDER, clock, contacts=advocacy.continuity.contacts)
    assert scheduler.tick().contact_overdue == 1
    coordinator = add_advocate(advocacy, name="Coordinator Synthetic-Sa")
    with advocacy.unit_of_work() as uow:
        uow.advocates.get(coordinator["id"]).role = "coordinator"

    page = caseload(advocacy, coordinator["id"])
    assert 'id="needs-attention"' in page and page.count(f'data-case-id="{case["id"]}"') >= 2
    assert "No contact" in page and "High risk" in page and "exploiters nearby" in page
    assert 'id="needs-attention"' not in caseload(advocacy, case["advocate"]["id"])  # the coordinator's list

    reached = {"at": datetime.now(UTC).isoformat(), "method": "phone", "outcome": "reached", "interpreter_used": False}
    response = advocacy.client.post(f"/v1/cases/{case['id']}/contacts", json=reached, headers=advocacy.headers)
    assert response.status_code == 201, response.get_json()
    page = caseload(advocacy, coordinator["id"])
    assert "No contact" not in page and "High risk" in page
