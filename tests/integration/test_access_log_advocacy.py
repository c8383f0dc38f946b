"""Every read of a case through advocacy's API leaves an access log row (who, what, when, why, the trace id) on
the real PostgreSQL; the charity reads the log of a case, another organisation cannot; the log refuses
UPDATE, DELETE and TRUNCATE by the service's own connection, and the retention step alone removes what is past
its period (issue 15 item 2)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from services.advocacy import retention as advocacy_retention
from services.advocacy.models import AccessLog, Advocate, Case
from support.advocacy import PROVIDER, SCOPES, FakeIntake, Instance, accepted_case, add_advocate, confirmed, deliver
from support.apps import service_app

READS = ("", "/contacts", "/notes", "/risks", "/consent", "/nrm", "/transitions")


def open_case(advocacy) -> dict:
    case = accepted_case(advocacy)
    deliver(advocacy, confirmed(case), intake=FakeIntake())
    return case


@pytest.fixture
def paged(fresh_database, dev_keys, broker_url, auth_header):
    """advocacy with the dev sign-in, so the page is signed into as an advocate would (its own form)."""
    app = service_app("advocacy", fresh_database("advocacy"), dev_keys, PROVIDER_ID=PROVIDER, AMQP_URL=broker_url,
                      ADVOCACY_DEV_SIGNIN="true")  # fmt: skip
    yield Instance(app.test_client(), app.extensions["advocacy"], auth_header(PROVIDER, "provider", SCOPES))
    app.extensions["advocacy"].engine.dispose()


def sign_in(advocacy, advocate_id: str):
    client = advocacy.client.application.test_client()
    form = client.get("/signin").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
    response = client.post("/signin/dev", data={"advocate_id": advocate_id, "csrf_token": csrf and csrf.group(1)})
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def rows(advocacy, case_id: str) -> list[AccessLog]:
    with advocacy.sessions.begin() as session:
        found = list(session.scalars(select(AccessLog).where(AccessLog.subject_id == case_id).order_by(AccessLog.id)))
        session.expunge_all()
        return found


def test_every_api_read_of_a_case_is_logged_with_who_what_and_why(advocacy):
    case = open_case(advocacy)
    for path in READS:
        response = advocacy.client.get(f"/v1/cases/{case['id']}{path}", headers=advocacy.headers)
        assert response.status_code == 200, (path, response.get_json())
    assert advocacy.client.get("/v1/cases", headers=advocacy.headers).status_code == 200

    logged = rows(advocacy, case["id"])[-8:]  # opening the case read it too (support.advocacy)
    assert [(r.what, r.purpose) for r in logged] == [
        ("case", "advocacy.get_case"),
        ("case.contacts", "care.list_contacts"),
        ("case.notes", "care.list_notes"),
        ("case.risks", "care.list_risks"),
        ("case.consent", "consent.list_consent"),
        ("case.nrm", "continuity.get_nrm"),
        ("case.transitions", "continuity.list_case_transitions"),
        ("case.summary", "advocacy.list_cases"),
    ]
    assert all(r.org == PROVIDER and r.sub and r.subject_kind == "case" for r in logged)


def test_a_read_inside_a_span_carries_its_trace_id(advocacy):
    case = open_case(advocacy)
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("caller") as span:
        assert advocacy.client.get(f"/v1/cases/{case['id']}/notes", headers=advocacy.headers).status_code == 200
        expected = format(span.get_span_context().trace_id, "032x")
    assert rows(advocacy, case["id"])[-1].trace_id == expected


def test_the_charity_reads_who_has_seen_a_case_newest_first_and_that_read_is_logged(advocacy, auth_header):
    case = open_case(advocacy)
    advocacy.client.get(f"/v1/cases/{case['id']}/notes", headers=advocacy.headers)
    response = advocacy.client.get(f"/v1/cases/{case['id']}/access-log?page_size=10", headers=advocacy.headers)
    assert response.status_code == 200, response.get_json()
    entries = response.get_json()
    assert [e["what"] for e in entries[:2]] == ["case.access-log", "case.notes"]
    assert entries[0]["org"] == PROVIDER and entries[0]["purpose"] == "subject_access.case_access_log"

    other = auth_header("charity-b", "provider", "cases:read cases:write")
    assert advocacy.client.get(f"/v1/cases/{case['id']}/access-log", headers=other).status_code == 403
    reader = auth_header(PROVIDER, "provider", "cases:read")
    assert advocacy.client.get(f"/v1/cases/{case['id']}/access-log", headers=reader).status_code == 403
    assert advocacy.client.get("/v1/cases/no-such-case/access-log", headers=advocacy.headers).status_code == 404


def test_the_log_refuses_update_delete_and_truncate_and_retention_still_purges(advocacy):
    case = open_case(advocacy)
    advocacy.client.get(f"/v1/cases/{case['id']}", headers=advocacy.headers)
    kept = [(r.id, r.sub, r.at) for r in rows(advocacy, case["id"])]
    for statement in ("UPDATE access_log SET sub = 'someone-else'", "DELETE FROM access_log", "TRUNCATE access_log"):
        with pytest.raises(DBAPIError, match="append-only"), advocacy.sessions.begin() as session:
            session.execute(text(statement))
    assert [(r.id, r.sub, r.at) for r in rows(advocacy, case["id"])] == kept

    # Thirteen months on, the retention step (12 months) removes the row, and only through its own escape.
    later = datetime.now(UTC) + timedelta(days=400)
    done = {o.kind: o.count for o in advocacy_retention.retention(advocacy.unit_of_work, PROVIDER).run(later)}
    assert done["access_log"] == len(kept)
    with advocacy.sessions.begin() as session:
        assert session.scalar(select(func.count()).select_from(AccessLog)) == 0


def test_page_views_are_logged_and_only_a_coordinator_sees_who_has_seen_the_record(paged):
    case = open_case(paged)
    coordinator = add_advocate(paged, name="Coordinator Synthetic-Ria")
    with paged.sessions.begin() as session:
        session.get(Advocate, coordinator["id"]).role = "coordinator"
    with paged.sessions.begin() as session:
        advocate_id = session.get(Case, case["id"]).advocate_id
    advocate = sign_in(paged, advocate_id)
    assert advocate.get("/caseload").status_code == 200
    page = advocate.get(f"/cases/{case['id']}").get_data(as_text=True)
    assert "Who has seen this record" not in page  # an advocate's own case: no panel

    boss = sign_in(paged, coordinator["id"])
    page = boss.get(f"/cases/{case['id']}").get_data(as_text=True)
    assert "Who has seen this record" in page
    panel = page.split('id="seen"', 1)[1].split("</table>", 1)[0]
    assert "Coordinator Synthetic-Ria" in panel and "Advocate Synthetic-Jo" in panel  # names, not ids
    assert "the case page" in panel and "the case in a list" in panel and "on this page" in panel
    assert 'data-purpose="advocacy.get_case"' in panel and "through the API" in panel  # the API reads too
    assert f"{PROVIDER} (a system)" in panel

    logged = rows(paged, case["id"])
    assert [(r.what, r.sub, r.org) for r in logged[-3:]] == [
        ("case.summary", f"advocate:{advocate_id}", PROVIDER),
        ("case.page", f"advocate:{advocate_id}", PROVIDER),
        ("case.page", f"advocate:{coordinator['id']}", PROVIDER),
    ]
    welsh = boss.get(f"/cases/{case['id']}?lang=cy").get_data(as_text=True)
    assert "Pwy sydd wedi gweld y cofnod hwn" in welsh and "tudalen yr achos" in welsh


def test_every_get_route_of_a_case_leaves_a_row_even_one_added_later(advocacy):
    """Derived from the app's own routes, not a list: a new read of a case that forgot its row fails here."""
    case = open_case(advocacy)
    routes = sorted(
        rule.rule.replace("<case_id>", case["id"])
        for rule in advocacy.client.application.url_map.iter_rules()
        if "GET" in (rule.methods or ()) and rule.rule.startswith("/v1/cases/<case_id>") and rule.rule.count("<") == 1
    )
    assert len(routes) >= len(READS), routes
    for path in routes:
        before = len(rows(advocacy, case["id"]))
        response = advocacy.client.get(path, headers=advocacy.headers)
        assert response.status_code == 200, (path, response.get_json())
        assert len(rows(advocacy, case["id"])) > before, f"{path} was read and left no access log row"
