"""Idempotency-Key through each service's app on the real PostgreSQL (issue 12, item 3): a retried POST is done
once and answered as the first time; another body under the key is 422; keys are the caller's own; the
claim is atomic on PostgreSQL and SQLite alike; every POST documents the header."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from services.advocacy.models import Clock, NrmDecision
from services.intake.models import IdempotencyKey as IntakeKey
from services.intake.models import Outbox, Referral
from services.migrate import migrate
from services.notifications.models import Subscription
from shared.clock import utcnow
from shared.db import make_engine, make_session_factory
from shared.idempotency import HEADER, TTL, Claimed, Refused, SqlKeyStore, claim, fingerprint
from shared.testing import referral_body
from support.advocacy import FakeIntake, accepted_case, confirmed, deliver
from support.apps import dispose, service_app
from support.db import count

POLICE = ("met-police", "police", "referrals:write referrals:read")
OTHER_FORCE = ("west-yorkshire-police", "police", "referrals:write referrals:read")
DECISION = {"stage": "rg", "outcome": "positive", "decided_on": "2026-01-06"}


def keyed(headers: dict[str, str], key: str) -> dict[str, str]:
    return {**headers, HEADER: key}


@pytest.fixture
def intake_client(intake):
    return intake[0].test_client(), intake[1]


def test_a_referral_posted_twice_with_one_key_is_one_referral_one_event_and_the_same_response(
    intake_client, auth_header
):
    client, sessions = intake_client
    body, headers = referral_body(), keyed(auth_header(*POLICE), "retry-7f3a")
    first = client.post("/v1/referrals", json=body, headers=headers)
    again = client.post("/v1/referrals", json=body, headers=headers)

    assert first.status_code == again.status_code == 201, (first.get_json(), again.get_json())
    assert again.get_data() == first.get_data() and again.headers["Location"] == first.headers["Location"]
    assert again.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    assert count(sessions, Referral) == 1
    assert count(sessions, Outbox, Outbox.routing_key == "referral.received") == 1
    with sessions() as session:  # the stored response is the key's alone, sealed (shared.sealed): the replay opened it
        [row] = session.scalars(select(IntakeKey)).all()
        assert row.key == "retry-7f3a" and row.status == 201 and row.body.startswith(b"v1")
        assert first.get_json()["id"].encode() not in row.body


def test_the_same_key_with_another_body_is_422_and_does_nothing(intake_client, auth_header):
    client, sessions = intake_client
    headers = keyed(auth_header(*POLICE), "retry-1")
    assert client.post("/v1/referrals", json=referral_body(), headers=headers).status_code == 201
    other = client.post("/v1/referrals", json=referral_body(), headers=headers)
    assert other.status_code == 422, other.get_json()
    assert "different request body" in other.get_json()["message"]
    assert count(sessions, Referral) == 1


def test_a_key_is_scoped_to_the_caller_and_a_refusal_is_not_remembered(intake_client, auth_header):
    client, sessions = intake_client
    body = referral_body()
    mine = client.post("/v1/referrals", json=body, headers=keyed(auth_header(*POLICE), "shared-key"))
    theirs = client.post("/v1/referrals", json=body, headers=keyed(auth_header(*OTHER_FORCE), "shared-key"))
    assert mine.status_code == theirs.status_code == 201  # another force's key never answers with ours
    assert theirs.get_json()["id"] != mine.get_json()["id"]
    bad = {**referral_body(), "needs": "legal"}
    headers = keyed(auth_header(*POLICE), "fixed-later")
    assert client.post("/v1/referrals", json=bad, headers=headers).status_code == 422
    assert client.post("/v1/referrals", json=referral_body(), headers=headers).status_code == 201
    assert count(sessions, Referral) == 3


@pytest.mark.parametrize("key", ["", "x" * 256, "bad\x01key"])
def test_a_malformed_key_is_400_naming_the_header(intake_client, auth_header, key):
    client, sessions = intake_client
    response = client.post("/v1/referrals", json=referral_body(), headers=keyed(auth_header(*POLICE), key))
    assert response.status_code == 400, response.get_json()
    assert HEADER in response.get_json()["errors"]["headers"]
    assert count(sessions, Referral) == 0


def test_the_same_decision_posted_twice_with_one_key_is_one_decision_and_one_set_of_clocks(advocacy):
    case = accepted_case(advocacy)
    deliver(advocacy, confirmed(case), intake=FakeIntake())
    path = f"/v1/cases/{case['id']}/nrm/decisions"
    headers = keyed(advocacy.headers, "decision-1")
    first = advocacy.client.post(path, json=DECISION, headers=headers)
    again = advocacy.client.post(path, json=DECISION, headers=headers)

    assert first.status_code == again.status_code == 201, (first.get_json(), again.get_json())
    assert again.get_json() == first.get_json()
    clocks = count(advocacy.sessions, Clock)
    assert count(advocacy.sessions, NrmDecision) == 1
    unkeyed = advocacy.client.post(path, json=DECISION, headers=advocacy.headers)
    assert unkeyed.status_code == 409, unkeyed.get_json()  # without a key: refused as a duplicate
    assert count(advocacy.sessions, NrmDecision) == 1 and count(advocacy.sessions, Clock) == clocks


def test_a_subscription_posted_twice_with_one_key_is_one_subscription(fresh_database, dev_keys, auth_header):
    app = service_app("notifications", fresh_database("notifications"), dev_keys, WEBHOOK_ALLOW_PRIVATE="true")
    try:
        client = app.test_client()
        headers = keyed(auth_header("met-police", "police", "subscriptions:write"), "subscribe-1")
        body = {"url": "http://127.0.0.1:9/hook", "events": ["referral.allocated"]}
        first = client.post("/v1/subscriptions", json=body, headers=headers)
        again = client.post("/v1/subscriptions", json=body, headers=headers)
        assert first.status_code == again.status_code == 201, (first.get_json(), again.get_json())
        assert again.get_json() == first.get_json()
        assert count(app.extensions["notifications"].sessions, Subscription) == 1
    finally:
        dispose(app)


@pytest.fixture(params=["postgresql", "sqlite"])
def key_store(request, fresh_database, tmp_path):
    url = fresh_database("intake") if request.param == "postgresql" else f"sqlite:///{tmp_path}/intake.db"
    migrate("intake", url)
    engine = make_engine(url, instrument=False)
    yield SqlKeyStore(make_session_factory(engine), IntakeKey)
    engine.dispose()


def test_a_key_is_claimed_once_and_an_expired_one_behaves_as_new(key_store):
    now, body = utcnow(), fingerprint(b'{"a": 1}')
    assert claim(key_store, "id-1", "k", body, now) == Claimed("id-1")
    in_flight = claim(key_store, "id-1", "k", body, now)
    assert isinstance(in_flight, Refused) and in_flight.status == 409
    assert key_store.retake("id-1", body, now) is False  # neither expired nor abandoned
    later = now + TTL + timedelta(seconds=1)
    assert claim(key_store, "id-1", "k", fingerprint(b"other"), later) == Claimed("id-1")
    assert key_store.retake("id-1", body, later) is False  # the first retaker won
    key_store.prune(later + TTL)
    assert key_store.find("id-1") is None


def test_every_post_of_every_service_documents_the_header_and_its_answers(intake, advocacy, fresh_database, dev_keys):
    notifications = service_app("notifications", fresh_database("notifications"), dev_keys)
    try:
        for client in (intake[0].test_client(), advocacy.client, notifications.test_client()):
            paths = client.get("/openapi.json").get_json()["paths"]
            posts = {path: ops["post"] for path, ops in paths.items() if "post" in ops}
            assert posts
            for path, operation in posts.items():
                names = [p["name"] for p in operation.get("parameters", []) if p.get("in") == "header"]
                assert HEADER in names, path
                assert {"400", "409", "422"} <= set(operation["responses"]), path
    finally:
        dispose(notifications)
