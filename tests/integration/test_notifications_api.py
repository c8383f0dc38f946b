"""The notifications API on real PostgreSQL: subscriptions, their validation, auth and org isolation."""

from __future__ import annotations

import base64
import json
import warnings
from datetime import timedelta

import pytest

from services.migrate import migrate
from services.notifications.app import create_app
from services.notifications.models import Delivery
from shared.clock import utcnow
from shared.config import Settings
from shared.db import make_engine, make_session_factory

WRITE = "subscriptions:write"
HOOK = "http://127.0.0.1:9/hook"


@pytest.fixture
def database_url(fresh_database) -> str:
    url = fresh_database("notifications")
    migrate("notifications", url)
    return url


def make_settings(database_url: str, dev_keys, **env: str) -> Settings:
    return Settings.from_env(
        "notifications",
        {
            "NOTIFICATIONS_DATABASE_URL": database_url,
            "AUTH_PUBLIC_KEY_FILE": str(dev_keys[1]),
            "WEBHOOK_ALLOW_PRIVATE": "true",
            **env,
        },
    )


@pytest.fixture
def client(database_url, dev_keys):
    return create_app(make_settings(database_url, dev_keys)).test_client()


@pytest.fixture
def production_client(database_url, dev_keys):
    """WEBHOOK_ALLOW_PRIVATE=false: the SSRF guard is on (IP-literal URLs need no DNS)."""
    return create_app(make_settings(database_url, dev_keys, WEBHOOK_ALLOW_PRIVATE="false")).test_client()


@pytest.fixture
def as_org(auth_header):
    def headers(org: str = "met-police", scopes: str = WRITE) -> dict[str, str]:
        return auth_header(org, "police", scopes)

    return headers


def subscribe(client, headers, **body):
    return client.post(
        "/v1/subscriptions", json={"url": HOOK, "events": ["referral.received"], **body}, headers=headers
    )


def test_openapi_builds_without_warnings(database_url, dev_keys):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        client = create_app(make_settings(database_url, dev_keys)).test_client()
        response = client.get("/openapi.json")
    assert response.status_code == 200
    # apispec reports duplicate or unresolvable schema names as UserWarnings.
    assert [str(w.message) for w in caught if issubclass(w.category, UserWarning)] == []
    paths = response.get_json()["paths"]
    assert {"post", "get"} <= set(paths["/v1/subscriptions"])
    assert "delete" in paths["/v1/subscriptions/{subscription_id}"]
    assert "get" in paths["/v1/deliveries"]
    answers = {
        "/v1/subscriptions/{subscription_id}/ping": "202",
        "/v1/subscriptions/{subscription_id}/secret-rotation": "200",
        "/v1/subscriptions/{subscription_id}/redelivery": "202",
        "/v1/deliveries/{delivery_id}/redelivery": "202",
    }
    for path, success in answers.items():
        responses = paths[path]["post"]["responses"]
        assert {success, "401", "403", "404", "409", "422"} <= set(responses), path
        assert "content" in responses[success], path


def test_create_subscription_generates_a_whsec_secret_shown_once(client, as_org):
    response = subscribe(client, as_org(), events=["referral.received", "case.opened", "referral.received"])
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"id", "url", "events", "secret", "created_at"}
    assert body["secret"].startswith("whsec_")
    assert len(base64.b64decode(body["secret"][6:], validate=True)) == 32
    assert body["events"] == ["referral.received", "case.opened"]
    assert body["url"] == HOOK
    assert body["created_at"].endswith("+00:00")

    listed = client.get("/v1/subscriptions", headers=as_org()).get_json()
    assert [s["id"] for s in listed] == [body["id"]]
    assert "secret" not in listed[0]
    assert body["secret"] not in json.dumps(listed)


def test_a_given_secret_is_kept(client, as_org):
    secret = "whsec_" + base64.b64encode(b"s" * 32).decode()
    response = subscribe(client, as_org(), secret=secret)
    assert response.status_code == 201
    assert response.get_json()["secret"] == secret


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"events": ["referral.received"]}, ("url",)),
        ({"url": HOOK}, ("events",)),
        ({"url": HOOK, "events": []}, ("events",)),
        ({"url": HOOK, "events": ["referral.received", "referral.offered"]}, ("events", "1")),
        ({"url": HOOK, "events": ["case.opened"], "secret": "not-whsec"}, ("secret",)),
        ({"url": HOOK, "events": ["case.opened"], "secret": "whsec_c2hvcnQ="}, ("secret",)),
        ({"url": HOOK, "events": ["case.opened"], "secret": "whsec_***"}, ("secret",)),
        ({"url": "https://a.example/" + "x" * 2048, "events": ["case.opened"]}, ("url",)),
        ({"url": HOOK, "events": ["case.opened"], "org_id": "someone-else"}, ("org_id",)),
    ],
)
def test_invalid_subscriptions_are_422_with_the_field_path(client, as_org, body, path):
    response = client.post("/v1/subscriptions", json=body, headers=as_org())
    assert response.status_code == 422
    errors = response.get_json()["errors"]["json"]
    for key in path:
        errors = errors[key]
    assert errors


@pytest.mark.parametrize(
    ("url", "explains"),
    [
        ("http://hooks.agency.example/in", "https"),
        ("https://127.0.0.1/hook", "loopback"),
        ("https://10.0.0.8/hook", "private"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://[::1]:8443/hook", "loopback"),
        ("https://user:pw@93.184.216.34/hook", "credentials"),
    ],
)
def test_unsafe_urls_are_refused_in_production(production_client, as_org, url, explains):
    response = subscribe(production_client, as_org(), url=url)
    assert response.status_code == 422
    messages = response.get_json()["errors"]["json"]["url"]
    assert explains in messages[0]


def test_a_public_https_url_is_accepted_in_production(production_client, as_org):
    assert subscribe(production_client, as_org(), url="https://93.184.216.34/hook").status_code == 201


def test_dev_flag_allows_http_loopback(client, as_org):
    assert subscribe(client, as_org(), url="http://127.0.0.1:8080/hook").status_code == 201


def test_auth_rules(client, as_org, make_token):
    assert client.get("/v1/subscriptions").status_code == 401
    assert client.get("/v1/subscriptions", headers={"Authorization": "Bearer nonsense"}).status_code == 401
    expired = make_token("met-police", "police", WRITE, ttl=-60)
    assert client.get("/v1/subscriptions", headers={"Authorization": f"Bearer {expired}"}).status_code == 401
    assert subscribe(client, {}).status_code == 401
    assert subscribe(client, as_org(scopes="referrals:read")).status_code == 403
    assert client.get("/v1/subscriptions", headers=as_org(scopes="referrals:read")).status_code == 403
    assert client.get("/v1/deliveries", headers=as_org(scopes="cases:read")).status_code == 403
    assert client.get("/v1/deliveries").status_code == 401


def test_another_orgs_subscription_is_invisible_and_a_404(client, as_org):
    mine = subscribe(client, as_org("met-police")).get_json()
    theirs = subscribe(client, as_org("kent-police")).get_json()

    listed = client.get("/v1/subscriptions", headers=as_org("met-police")).get_json()
    assert [s["id"] for s in listed] == [mine["id"]]
    assert client.delete(f"/v1/subscriptions/{theirs['id']}", headers=as_org("met-police")).status_code == 404
    assert client.delete("/v1/subscriptions/no-such-id", headers=as_org("met-police")).status_code == 404

    assert client.delete(f"/v1/subscriptions/{mine['id']}", headers=as_org("met-police")).status_code == 204
    assert client.get("/v1/subscriptions", headers=as_org("met-police")).get_json() == []
    assert client.delete(f"/v1/subscriptions/{mine['id']}", headers=as_org("met-police")).status_code == 404
    assert len(client.get("/v1/subscriptions", headers=as_org("kent-police")).get_json()) == 1


def test_deleting_a_subscription_fails_its_pending_deliveries(client, as_org, database_url):
    subscription = subscribe(client, as_org()).get_json()
    engine = make_engine(database_url, instrument=False)
    now = utcnow()
    with make_session_factory(engine).begin() as session:
        session.add(
            Delivery(
                id="d-1",
                webhook_id="msg_e-1_x",
                subscription_id=subscription["id"],
                org_id="met-police",
                event_type="referral.received",
                event_id="e-1",
                referral_id="r-1",
                payload="{}",
                status="pending",
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
        )
    assert client.delete(f"/v1/subscriptions/{subscription['id']}", headers=as_org()).status_code == 204
    [delivery] = client.get("/v1/deliveries", headers=as_org()).get_json()
    assert (delivery["status"], delivery["last_error"], delivery["next_attempt_at"]) == (
        "failed",
        "subscription deleted",
        None,
    )
    engine.dispose()


def test_deliveries_are_listed_newest_first_paginated_per_org(client, as_org, database_url):
    subscription = subscribe(client, as_org()).get_json()
    other = subscribe(client, as_org("kent-police")).get_json()
    engine = make_engine(database_url, instrument=False)
    base = utcnow()
    with make_session_factory(engine).begin() as session:
        for n in range(12):
            created = base.replace(microsecond=0) - timedelta(minutes=n)
            session.add(
                Delivery(
                    id=f"d-{n:02}",
                    webhook_id=f"msg_e-{n}_{subscription['id']}",
                    subscription_id=subscription["id"],
                    org_id="met-police",
                    event_type="referral.received",
                    event_id=f"e-{n}",
                    referral_id="r-even" if n % 2 == 0 else "r-odd",
                    payload="{}",
                    status="pending",
                    attempts=0,
                    next_attempt_at=created,
                    created_at=created,
                )
            )
        session.add(
            Delivery(
                id="d-other",
                webhook_id="msg_x",
                subscription_id=other["id"],
                org_id="kent-police",
                event_type="referral.received",
                event_id="e-x",
                referral_id="r-even",
                payload="{}",
                status="pending",
                attempts=0,
                next_attempt_at=base,
                created_at=base,
            )
        )
    engine.dispose()

    first = client.get("/v1/deliveries", headers=as_org())
    assert first.status_code == 200
    assert [d["id"] for d in first.get_json()] == [f"d-{n:02}" for n in range(10)]
    assert json.loads(first.headers["X-Pagination"])["total"] == 12
    second = client.get("/v1/deliveries?page=2", headers=as_org()).get_json()
    assert [d["id"] for d in second] == ["d-10", "d-11"]

    even = client.get(
        "/v1/deliveries?referral_id=r-even&page_size=50", headers=as_org(scopes="referrals:read")
    ).get_json()
    assert [d["id"] for d in even] == [f"d-{n:02}" for n in range(0, 12, 2)]
    assert set(even[0]) == {
        "id",
        "webhook_id",
        "subscription_id",
        "event_type",
        "event_id",
        "referral_id",
        "status",
        "attempts",
        "last_status_code",
        "last_error",
        "next_attempt_at",
        "created_at",
        "delivered_at",
    }
    theirs = client.get("/v1/deliveries?referral_id=r-even", headers=as_org("kent-police")).get_json()
    assert [d["id"] for d in theirs] == ["d-other"]
