"""A referral travels from an agency to an advocate and back as a signed webhook, in one trace."""

from __future__ import annotations

import json
import secrets
import time
from concurrent.futures import ThreadPoolExecutor

import pika
import pytest
import requests
from opentelemetry.instrumentation.utils import suppress_instrumentation
from standardwebhooks.webhooks import Webhook

from shared.testing import referral_body

AGENCY = "met-police"
AGENCY_SCOPES = "referrals:write referrals:read subscriptions:write"


@pytest.fixture(scope="module")
def subscription(running_platform):
    """The agency subscribes its endpoint to every event about its referrals."""
    events = [
        "referral.received",
        "referral.allocated",
        "referral.escalated",
        "referral.withdrawn",
        "case.opened",
    ]
    return running_platform.subscribe(AGENCY, AGENCY_SCOPES, "referrals", events)


@pytest.fixture(scope="module")
def amqp_tap(running_platform):
    """Every message on the exchange, copied to a queue of the test's, to read its headers."""
    connection = pika.BlockingConnection(pika.URLParameters(running_platform.amqp_url))
    channel = connection.channel()
    channel.queue_declare("e2e.tap", durable=True)
    channel.queue_bind("e2e.tap", "referrals", routing_key="#")
    connection.close()
    return "e2e.tap"


def post_referral(platform, body, headers=None):
    # The test process instruments requests too: suppress it, so the agency's traceparent goes out as set.
    with suppress_instrumentation():
        return requests.post(
            f"{platform.url('intake')}/v1/referrals",
            json=body,
            headers={**platform.headers(AGENCY, "police", AGENCY_SCOPES), **(headers or {})},
            timeout=10,
        )


def webhook_for(platform, referral_id: str, event_type: str, timeout: float = 30):
    def find(items):
        for item in items:
            body = json.loads(item.body)
            if body["type"] == event_type and body["data"]["referral_id"] == referral_id:
                return item
        return None

    return platform.webhooks.wait_for(find, timeout=timeout)


def test_a_referral_is_allocated_and_the_agency_gets_a_signed_webhook_in_its_own_trace(
    running_platform, subscription, amqp_tap
):
    platform = running_platform
    trace_id, parent = secrets.token_hex(16), secrets.token_hex(8)
    body = referral_body(seed=7)
    response = post_referral(platform, body, {"traceparent": f"00-{trace_id}-{parent}-01"})
    assert response.status_code == 201, response.text
    referral_id = response.json()["id"]

    hook = webhook_for(platform, referral_id, "referral.allocated")
    Webhook(subscription["secret"]).verify(hook.body, hook.headers)  # raises if the signature is wrong
    assert hook.headers["traceparent"].split("-")[1] == trace_id
    payload = json.loads(hook.body)
    assert payload["data"]["status"] == "allocated"
    assert payload["data"]["external_reference"] == body["external_reference"]

    referral = requests.get(
        f"{platform.url('intake')}/v1/referrals/{referral_id}",
        headers=platform.headers(AGENCY, "police", AGENCY_SCOPES),
        timeout=10,
    ).json()
    assert referral["status"] == "allocated"
    assert referral["allocation"]["provider_id"] == "demo-charity"
    assert referral["allocation"]["advocate"]["name"].startswith("Advocate")

    opened = webhook_for(platform, referral_id, "case.opened")
    assert opened.headers["traceparent"].split("-")[1] == trace_id
    charity = platform.headers("demo-charity", "provider", "cases:read")
    case = requests.get(
        f"{platform.url('advocacy')}/v1/cases/{referral['allocation']['case_id']}",
        headers=charity,
        timeout=10,
    ).json()
    assert case["status"] == "open"
    assert case["referral"]["subject"]["given_name"] == body["subject"]["given_name"]

    services = _services_in_trace(platform, trace_id)
    for name in ("intake-api", "intake-worker", "advocacy-worker", "notifications-worker"):
        assert name in services, f"no span from {name} in the trace; saw {sorted(services)}"
    spans = platform.sink.spans_of(trace_id)
    assert any(s.attributes.get("db.system") or s.attributes.get("db.system.name") for s in spans), (
        "no database span: is the SQLAlchemy instrumentation active?"
    )
    assert any(s.attributes.get("referral.id") == referral_id for s in spans)


def test_no_personal_data_reaches_logs_spans_message_headers_or_webhooks(running_platform, subscription, amqp_tap):
    platform = running_platform
    body = referral_body(seed=11)
    subject = body["subject"]
    secrets_of_the_person = [
        subject["given_name"],
        subject["family_name"],
        subject["aliases"][0],
        subject["date_of_birth"],
        body["narrative"],
        body["risk"]["notes"],
    ]
    referral_id = post_referral(platform, body).json()["id"]
    webhook_for(platform, referral_id, "case.opened")
    time.sleep(1.5)  # let the batch span processors export

    spans = [json.dumps([s.name, s.attributes]) for s in platform.sink.items]
    webhooks = [json.dumps(h.headers) + h.body.decode() for h in platform.webhooks.items]
    headers = _tapped_headers(platform.amqp_url, amqp_tap)
    places = {"logs": platform.platform.logs(), "spans": "\n".join(spans), "webhooks": "\n".join(webhooks),
              "amqp headers": "\n".join(headers)}  # fmt: skip
    for place, text in places.items():
        assert text, f"nothing captured from {place}"
        for value in secrets_of_the_person:
            assert value not in text, f"personal data found in {place}"
    assert referral_id in places["spans"]


def test_a_burst_of_referrals_all_reach_the_agency(running_platform, subscription):
    platform = running_platform

    def send(i):
        return post_referral(platform, referral_body(seed=100 + i, child=i % 3 == 0))

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(send, range(30)))
    assert all(r.status_code == 201 for r in responses), [r.text for r in responses if r.status_code != 201]
    for response in responses:
        webhook_for(platform, response.json()["id"], "referral.allocated", timeout=60)


def _services_in_trace(platform, trace_id: str, timeout: float = 20) -> set[str]:
    wanted = {"intake-api", "intake-worker", "advocacy-worker", "notifications-worker"}
    deadline = time.monotonic() + timeout
    while True:
        services = {s.service for s in platform.sink.spans_of(trace_id)}
        if wanted <= services or time.monotonic() > deadline:
            return services
        time.sleep(0.2)


def _tapped_headers(url: str, queue: str) -> list[str]:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    found = []
    while True:
        method, properties, _ = channel.basic_get(queue, auto_ack=True)
        if method is None:
            break
        found.append(json.dumps({k: str(v) for k, v in (properties.headers or {}).items()}))
    connection.close()
    return found
