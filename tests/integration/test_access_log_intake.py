"""Every read of a referral through intake's API leaves an access log row on the real PostgreSQL (who, what, why,
the trace id); the referring organisation and the DPO read the log, another organisation is told the referral
does not exist; the log refuses UPDATE and DELETE by intake's own connection (issue 15 item 2). And
notifications logs its one read of personal data, the subject access copy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from services.intake import retention as intake_retention
from services.intake.models import AccessLog
from services.notifications.models import AccessLog as NotificationsAccessLog
from shared.testing import referral_body

POLICE = ("met-police", "police", "referrals:write referrals:read")
OTHER = ("kent-police", "police", "referrals:write referrals:read")
DPO = ("platform-dpo", "ops", "referrals:erase")
ADMIN = ("platform", "coordinator", "providers:admin")
COORDINATOR = ("platform", "coordinator", "referrals:read")
DEMO_PROVIDER = {"name": "Demo", "regions": ["london"], "serves": ["adult", "child"], "capacity": 5}


@pytest.fixture
def client(intake, auth_header):
    app, _ = intake
    c = app.test_client()
    assert c.put("/v1/providers/demo-charity", json=DEMO_PROVIDER, headers=auth_header(*ADMIN)).status_code == 201
    return c


def submitted(client, auth_header) -> str:
    response = client.post("/v1/referrals", json=referral_body(), headers=auth_header(*POLICE))
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def logged(sessions, referral_id: str) -> list[tuple[str, str, str, str]]:
    with sessions() as session:
        rows = session.scalars(select(AccessLog).where(AccessLog.subject_id == referral_id).order_by(AccessLog.id))
        return [(r.what, r.sub.split("-")[0], r.org, r.purpose) for r in rows]  # a token's sub: `<org>-<n>`


def test_reads_of_a_referral_leave_rows_with_who_what_and_why(client, auth_header, intake):
    referral_id = submitted(client, auth_header)
    police = auth_header(*POLICE)
    assert client.get(f"/v1/referrals/{referral_id}", headers=police).status_code == 200
    assert client.get("/v1/referrals", headers=police).status_code == 200
    assert client.get(f"/v1/referrals/{referral_id}/consent", headers=police).status_code == 200
    assert client.get(f"/v1/referrals/{referral_id}", headers=auth_header(*COORDINATOR)).status_code == 200
    assert client.get(f"/v1/subject-access/{referral_id}", headers=auth_header(*DPO)).status_code == 200

    assert logged(intake[1], referral_id) == [
        ("referral", "met", "met-police", "referrals.read_referral"),
        ("referral.summary", "met", "met-police", "referrals.list_referrals"),
        ("referral.consent", "met", "met-police", "consent.list_consent"),
        ("referral.progress", "platform", "platform", "referrals.read_referral"),
        ("subject_access", "platform", "platform-dpo", "subject_access.subject_access_copy"),
    ]


def test_a_read_in_a_trace_records_its_trace_id(client, auth_header, intake):
    referral_id = submitted(client, auth_header)
    with TracerProvider().get_tracer("test").start_as_current_span("agency") as span:
        assert client.get(f"/v1/referrals/{referral_id}", headers=auth_header(*POLICE)).status_code == 200
    with intake[1]() as session:
        row = session.scalars(select(AccessLog).where(AccessLog.subject_id == referral_id)).one()
        assert row.trace_id == format(span.get_span_context().trace_id, "032x")


def test_the_referring_org_and_the_dpo_read_the_log_and_nobody_else(client, auth_header, intake):
    referral_id = submitted(client, auth_header)
    client.get(f"/v1/referrals/{referral_id}", headers=auth_header(*POLICE))
    response = client.get(f"/v1/referrals/{referral_id}/access-log", headers=auth_header(*POLICE))
    assert response.status_code == 200, response.get_json()
    assert [(e["what"], e["org"]) for e in response.get_json()] == [
        ("access_log", "met-police"),  # this read, newest first
        ("referral", "met-police"),
    ]
    assert response.get_json()[0]["purpose"] == "subject_access.referral_access_log"
    assert "X-Pagination" in response.headers

    dpo = client.get(f"/v1/referrals/{referral_id}/access-log?page_size=1", headers=auth_header(*DPO))
    assert dpo.status_code == 200 and [e["org"] for e in dpo.get_json()] == ["platform-dpo"]
    for who in (OTHER, COORDINATOR, ("met-police", "police", "referrals:write")):
        status = client.get(f"/v1/referrals/{referral_id}/access-log", headers=auth_header(*who)).status_code
        assert status in (403, 404), who
    assert client.get("/v1/referrals/no-such/access-log", headers=auth_header(*DPO)).status_code == 404


def test_the_log_refuses_update_and_delete_and_retention_alone_purges(client, auth_header, intake):
    referral_id = submitted(client, auth_header)
    client.get(f"/v1/referrals/{referral_id}", headers=auth_header(*POLICE))
    for statement in ("UPDATE access_log SET org = 'kent-police'", "DELETE FROM access_log", "TRUNCATE access_log"):
        with pytest.raises(DBAPIError, match="append-only"), intake[1].begin() as session:
            session.execute(text(statement))
    assert [row[2] for row in logged(intake[1], referral_id)] == ["met-police"]

    done = {o.kind: o.count for o in intake_retention.retention(intake[1]).run(datetime.now(UTC) + timedelta(days=400))}
    assert done["access_log"] == 1
    with intake[1]() as session:
        assert session.scalar(select(func.count()).select_from(AccessLog)) == 0


def test_notifications_logs_its_subject_access_reads(notifications, auth_header):
    root, client = notifications
    assert client.get("/v1/subject-access/some-referral", headers=auth_header(*DPO)).status_code == 200
    with root.sessions() as session:
        [row] = session.scalars(select(NotificationsAccessLog)).all()
        assert (row.subject_id, row.what, row.org) == ("some-referral", "subject_access", "platform-dpo")
        with pytest.raises(DBAPIError, match="append-only"):
            session.execute(text("DELETE FROM access_log"))


def test_every_get_route_of_a_referral_leaves_a_row_even_one_added_later(client, auth_header, intake):
    """Derived from the app's own routes, not a list: a new read of a referral that forgot its row fails here.
    Each is read by the referring force, or by the DPO where only the DPO may."""
    referral_id = submitted(client, auth_header)
    routes = sorted(
        rule.rule.replace(f"<{rule.arguments and next(iter(rule.arguments))}>", referral_id)
        for rule in client.application.url_map.iter_rules()
        if "GET" in (rule.methods or ()) and rule.rule.startswith("/v1/") and len(rule.arguments) == 1
        and rule.rule.split("/")[2] in ("referrals", "subject-access")
    )  # fmt: skip
    assert len(routes) >= 4, routes
    for path in routes:
        before = len(logged(intake[1], referral_id))
        response = client.get(path, headers=auth_header(*POLICE))
        if response.status_code in (403, 404):
            response = client.get(path, headers=auth_header(*DPO))
        if path.endswith("/erasure") and response.status_code == 404:
            continue  # no erasure was asked for: there is nothing to read (test_intake_erasure_api reads one)
        assert response.status_code == 200, (path, response.get_json())
        assert len(logged(intake[1], referral_id)) > before, f"{path} was read and left no access log row"
