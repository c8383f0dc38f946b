"""The smaller leaks closed (issue 15 part 4), on the real PostgreSQL: every API answer of the three services is
`Cache-Control: no-store` and `X-Content-Type-Options: nosniff` (errors too); an agency's `tracestate` stops at
intake's edge while its trace id continues; and a 409 from the database's unique constraint leaves no error text
(the DETAIL quotes the external reference) in any span."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from shared.telemetry import WITHHELD
from shared.testing import referral_body

POLICE = ("met-police", "police", "referrals:write referrals:read")
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
AGENCY_HEADERS = {"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01", "tracestate": "agency=SECRET"}


def assert_protected(response) -> None:
    assert response.headers.get("Cache-Control") == "no-store", response.request.path
    assert response.headers.get("X-Content-Type-Options") == "nosniff", response.request.path


@pytest.mark.parametrize(
    ("method", "path", "json_body"),
    [
        ("get", "/v1/referrals", None),
        ("get", "/v1/referrals/no-such-referral", None),  # 404
        ("post", "/v1/referrals", {"external_reference": ""}),  # 422
        ("get", "/openapi.json", None),
        ("get", "/healthz", None),
    ],
)
def test_every_intake_answer_is_not_stored_and_not_sniffed(intake, auth_header, method, path, json_body):
    app, _ = intake
    response = getattr(app.test_client(), method)(path, json=json_body, headers=auth_header(*POLICE))
    assert response.status_code < 500
    assert_protected(response)


def test_every_advocacy_and_notifications_answer_is_not_stored_and_not_sniffed(advocacy, notifications):
    for response in (
        advocacy.client.get("/v1/cases", headers=advocacy.headers),
        advocacy.client.get("/v1/cases/no-such-case", headers=advocacy.headers),  # 404
        advocacy.client.get("/v1/cases"),  # 401
        notifications[1].get("/v1/subscriptions"),  # 401
        notifications[1].get("/openapi.json"),
    ):
        assert response.status_code < 500
        assert_protected(response)


def test_the_agencys_tracestate_stays_at_the_edge_and_its_trace_id_continues(intake, auth_header, spans):
    app, sessions = intake
    headers = auth_header(*POLICE) | AGENCY_HEADERS
    response = app.test_client().post("/v1/referrals", json=referral_body(), headers=headers)
    assert response.status_code == 201
    finished = spans.get_finished_spans()
    assert finished and all(format(s.context.trace_id, "032x") == TRACE_ID for s in finished)
    assert all(not s.context.trace_state for s in finished)
    assert all("SECRET" not in str(s.parent) for s in finished if s.parent is not None)
    with sessions() as session:
        rows = session.execute(text("SELECT traceparent, tracestate, payload FROM outbox")).all()
    assert rows and all(tracestate is None and "SECRET" not in payload for _, tracestate, payload in rows)
    assert all(TRACE_ID in traceparent for traceparent, _, _ in rows)


def test_a_conflict_from_the_database_leaves_no_error_text_in_any_span(intake, auth_header, spans):
    app, _ = intake
    client, headers = app.test_client(), auth_header(*POLICE)
    body = referral_body()
    assert client.post("/v1/referrals", json=body, headers=headers).status_code == 201
    spans.clear()
    reused = client.post("/v1/referrals", json=body | {"narrative": "Another synthetic narrative."}, headers=headers)
    assert reused.status_code == 409
    assert_protected(reused)
    finished = spans.get_finished_spans()
    failed = [s for s in finished if s.status.description]
    assert failed, "the INSERT's span should say it failed"
    for span in finished:
        assert span.status.description in (None, WITHHELD)
        for event in span.events:
            assert event.attributes is not None
            as_text = json.dumps(dict(event.attributes))
            assert body["external_reference"] not in as_text and "DETAIL" not in as_text
            if event.name == "exception":
                assert event.attributes["exception.message"] == WITHHELD and event.attributes["exception.type"]
