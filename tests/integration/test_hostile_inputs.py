"""No input makes a 500: the inputs that once did, on the real PostgreSQL, each get a 4xx naming the field.

NUL bytes (PostgreSQL text cannot hold them) and lone surrogates (not encodable) in a body, a path id or a
query value; deep nesting; duplicate JSON keys; page numbers past any offset; NRM decisions dated outside
the policy table or past the calendar's end. And a statement that fails anyway leaves no bound value and no
row of the database's error text in a log line or a span."""

from __future__ import annotations

import io
import json
import logging

import pytest
from opentelemetry import trace
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from services.migrate import SERVICES
from shared.db import make_engine
from shared.testing import referral_body
from support.advocacy import FakeIntake, Instance, add_advocate, confirmed, deliver, offered
from support.apps import dispose, service_app

PROVIDER = "charity-a"
POLICE = ("met-police", "police", "referrals:write referrals:read")
ADVOCATE = (PROVIDER, "provider", "offers:respond cases:read cases:write")
REFERRER = ("met-police", "police", "subscriptions:write")
NESTED = "[" * 1000 + "]" * 1000


@pytest.fixture
def apps(fresh_database, dev_keys):
    made = {s: service_app(s, fresh_database(s), dev_keys, PROVIDER_ID=PROVIDER) for s in SERVICES}
    yield made
    for app in made.values():
        dispose(app)


def raw(client, method: str, path: str, body: str, headers: dict) -> tuple[int, dict]:
    response = client.open(path, method=method, data=body, headers={**headers, "Content-Type": "application/json"})
    return response.status_code, response.get_json(silent=True) or {}


def referral_with(**fields) -> str:
    return json.dumps({**referral_body(), **fields})


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (referral_with(external_reference="MET-\x00-1"), "external_reference"),
        (referral_with(external_reference="MET-\ud800-1"), "external_reference"),
        (referral_with(narrative="a\x00b"), "narrative"),
        (json.dumps({**referral_body(), "subject": {"given_name": "Syn\x00thetic"}}), "subject.given_name"),
        (referral_with(narrative="x").replace('"narrative": "x"', f'"narrative": {NESTED}'), "_schema"),
        ('{"external_reference": "A", "external_reference": "B"}', "external_reference"),
    ],
    ids=["nul", "surrogate", "nul-narrative", "nul-nested", "deep", "duplicate-key"],
)
def test_a_hostile_referral_body_is_a_422_naming_the_field(apps, auth_header, body, field):
    status, answer = raw(apps["intake"].test_client(), "POST", "/v1/referrals", body, auth_header(*POLICE))
    assert status == 422, answer
    assert field in answer["errors"]["json"], answer


@pytest.mark.parametrize(
    ("service", "path", "who", "where", "field"),
    [
        ("intake", "/v1/referrals/abc%00def", POLICE, "path", "referral_id"),
        ("intake", "/v1/referrals?status=received%00", POLICE, "query", "status"),
        ("intake", "/v1/referrals?page=9223372036854775807", POLICE, "query", "page"),
        ("intake", "/v1/referrals?stauts=received", POLICE, "query", "stauts"),  # a misspelt filter
        ("advocacy", "/v1/cases/x%00y", ADVOCATE, "path", "case_id"),
        ("advocacy", "/v1/offers?page=9223372036854775807", ADVOCATE, "query", "page"),
        ("advocacy", "/v1/cases?page=99999999999999999999999", ADVOCATE, "query", "page"),
        ("advocacy", "/v1/transitions?page=9223372036854775807", ADVOCATE, "query", "page"),
        ("notifications", "/v1/deliveries?referral_id=a%00b", REFERRER, "query", "referral_id"),
        ("notifications", "/v1/deliveries?page=9223372036854775807", REFERRER, "query", "page"),
    ],
)
def test_a_hostile_path_or_query_is_a_422_naming_it(apps, auth_header, service, path, who, where, field):
    response = apps[service].test_client().get(path, headers=auth_header(*who))
    assert response.status_code == 422, (response.status_code, response.get_data(as_text=True)[:300])
    assert field in response.get_json()["errors"][where], response.get_json()


def test_an_undecodable_path_is_not_found(apps, auth_header):
    # %ED%A0%80 is a surrogate's UTF-8: werkzeug cannot decode it, so no route matches.
    client = apps["intake"].test_client()
    assert client.get("/v1/referrals/abc%ED%A0%80def", headers=auth_header(*POLICE)).status_code == 404


def test_a_hostile_advocate_or_subscription_is_a_422(apps, auth_header):
    advocate = {"name": "Advocate\x00", "email": "a@charity-a.example", "languages": ["en"], "max_caseload": 3}
    status, answer = raw(
        apps["advocacy"].test_client(), "POST", "/v1/advocates", json.dumps(advocate), auth_header(*ADVOCATE)
    )
    assert status == 422 and "name" in answer["errors"]["json"]
    # A control character would reach offer.accepted, whose schema refuses it: refused here, at the source.
    status, answer = raw(
        apps["advocacy"].test_client(), "POST", "/v1/advocates", json.dumps({**advocate, "name": "Jo\x01"}),
        auth_header(*ADVOCATE),
    )  # fmt: skip
    assert status == 422 and "name" in answer["errors"]["json"]
    hook = {"url": "https://agency.example/\ud800", "events": ["referral.received"]}
    status, answer = raw(
        apps["notifications"].test_client(), "POST", "/v1/subscriptions", json.dumps(hook), auth_header(*REFERRER)
    )
    assert status == 422 and "url" in answer["errors"]["json"]


@pytest.mark.parametrize("decided_on", ["1999-01-01", "1900-06-30", "9999-12-31"])
def test_an_nrm_decision_outside_the_policy_table_or_the_calendar_is_a_422_naming_its_date(
    apps, auth_header, decided_on
):
    app = apps["advocacy"]
    instance = Instance(app.test_client(), app.extensions["advocacy"], auth_header(*ADVOCATE))
    add_advocate(instance)
    deliver(instance, offered(), auto_accept=True)
    [case] = instance.client.get("/v1/cases", headers=instance.headers).get_json()
    deliver(instance, confirmed(instance.client.get(f"/v1/cases/{case['id']}", headers=instance.headers).get_json()),
            intake=FakeIntake())  # fmt: skip
    decision = {"stage": "rg", "outcome": "positive", "decided_on": decided_on}
    response = instance.client.post(f"/v1/cases/{case['id']}/nrm/decisions", json=decision, headers=instance.headers)
    assert response.status_code == 422, response.get_json()
    assert "decided_on" in response.get_json()["errors"]["json"]


CANARY = "Synthetic-Canary-7f3e"


def test_a_failing_statement_leaves_no_bound_value_or_row_in_a_log_line_or_a_span(fresh_database, spans, caplog):
    engine = make_engine(fresh_database("canary"))  # traced, as the services' engines are
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE people (id text PRIMARY KEY, age int)"))
        connection.execute(text("INSERT INTO people VALUES (:id, 1)"), {"id": CANARY})
    log = logging.getLogger("test.canary")
    failing = [
        ("INSERT INTO people VALUES (:id, 2)", {"id": CANARY}),  # DETAIL: Key (id)=(…) already exists
        ("SELECT * FROM people WHERE age = CAST(:age AS int)", {"age": CANARY}),  # invalid input syntax: "…"
        ("INSERT INTO people VALUES (:id, :age)", {"id": "x\x00" + CANARY, "age": 3}),  # NUL: driver error
    ]
    for statement, values in failing:
        # Inside a request's span, as the services' transactions are (shared.db traces none outside a trace).
        with trace.get_tracer("test").start_as_current_span("POST /v1/people"), pytest.raises(DBAPIError):
            try:
                with engine.begin() as connection:
                    connection.execute(text(statement), values)
            except DBAPIError:
                log.exception("statement failed")  # as an unhandled error's traceback would be logged
                raise
    engine.dispose()
    logged = "\n".join(logging.Formatter().format(record) for record in caplog.records)
    assert "statement failed" in logged and CANARY not in logged
    recorded = [(s.name, s.status.description, dict(s.attributes), [dict(e.attributes) for e in s.events])
                for s in spans.get_finished_spans()]  # fmt: skip
    assert any(description for _, description, _, _ in recorded)  # the errors were recorded, scrubbed
    assert CANARY not in repr(recorded), [r for r in recorded if CANARY in repr(r)]


def test_a_chunked_body_over_the_limit_is_a_413(apps, auth_header):
    """No Content-Length to refuse up front: the body is cut off as it is read (gunicorn marks a chunked
    body's end, `wsgi.input_terminated`)."""
    big = b'{"url": "https://agency.example/' + b"a" * 400_000 + b'", "events": ["referral.received"]}'
    headers = {**auth_header(*REFERRER), "Transfer-Encoding": "chunked", "Content-Type": "application/json"}
    response = (
        apps["notifications"]
        .test_client()
        .post(
            "/v1/subscriptions",
            input_stream=io.BytesIO(big),
            headers=headers,
            environ_base={"wsgi.input_terminated": True},
        )
    )
    assert response.status_code == 413, response.get_data(as_text=True)[:200]


def test_a_request_refused_before_any_view_is_traced_too(apps, auth_header, spans, caplog):
    # Hostile input (422) and a missing token (401) are answered by hooks that run before the view: the request's
    # server span starts before them (FlaskInstrumentor's hook first), so each refusal is one traced request.
    client = apps["intake"].test_client()
    hostile = client.get("/v1/referrals?status=%00", headers=auth_header("met-police", "police", "referrals:read"))
    unauthenticated = client.get("/v1/referrals")
    assert (hostile.status_code, unauthenticated.status_code) == (422, 401)
    served = [dict(s.attributes).get("http.status_code") for s in spans.get_finished_spans() if s.kind.name == "SERVER"]
    assert sorted(served) == [401, 422]
    assert not [r for r in caplog.records if "span missing" in r.getMessage()]
