"""Personal data lands nowhere in the clear (issue 15): the whole platform as processes, on the real broker and
on PostgreSQL, then again on SQLite files as `make run` keeps them. A referral with a canary in every
personal field is offered to charity-a, which declines it with a note; charity-b accepts it, logs a contact,
a note and a risk flag (each with a canary) and hands the case over to charity-c, which accepts. Then no
canary is in any plaintext column of any database (nor in the SQLite files' bytes, WAL included), in any
message that crossed the exchange or waits in any queue (retry and parking included), in any log line, in any
span, or in any webhook. Erasure then destroys the referral's data keys in intake and at every charity."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote, urlsplit

import pika
import pytest
import requests
from sqlalchemy import create_engine, inspect, text

from support.canaries import CANARIES, canaries_in, canaries_in_files, canaries_left, canary_referral, casework
from support.stack import Charity, platform_stack
from support.waiting import wait_until

POLICE = ("met-police", "police", "referrals:write referrals:read subscriptions:write")
CHARITIES = (  # routing offers to the most spare places first: charity-a, then charity-b
    Charity("charity-a", auto_accept=False, max_caseload=40),
    Charity("charity-b", auto_accept=True, max_caseload=20),
    Charity("charity-c", auto_accept=False, max_caseload=5),
)
ALL_DONE = {"receiving_agency_informed": True, "accommodation_confirmed": True, "handover_summary_written": True}
TAP = "e2e.canary-tap"


@pytest.fixture(scope="module", params=["postgresql", "sqlite"])
def stack(request, broker_url, pg_admin_url, dev_keys, make_token, tmp_path_factory):
    workdir = tmp_path_factory.mktemp(f"canaries-{request.param}")
    with platform_stack(broker_url, pg_admin_url, dev_keys, make_token, workdir, charities=CHARITIES,
                        sqlite=request.param == "sqlite", extra_env={"LOG_LEVEL": "DEBUG"}) as stack:  # fmt: skip
        stack.workdir = workdir  # type: ignore[attr-defined]
        yield stack


def _get(stack, service: str, path: str, headers: dict) -> requests.Response:
    return requests.get(f"{stack.url(service)}{path}", headers=headers, timeout=10)


def _post(stack, service: str, path: str, headers: dict, body: dict | None = None, method: str = "post"):
    response = requests.request(method, f"{stack.url(service)}{path}", json=body or {}, headers=headers, timeout=10)
    assert response.status_code in (200, 201, 202), f"{method} {path}: {response.status_code} {response.text}"
    return response.json()


def _staff(stack, charity: str) -> dict:
    return stack.headers(charity, "provider", "offers:respond cases:read cases:write")


def _case_of(stack, charity: str, referral_id: str) -> str | None:
    cases = _get(stack, charity, "/v1/cases", _staff(stack, charity)).json()
    return next((c["id"] for c in cases if c["referral_id"] == referral_id and c["status"] == "open"), None)


def _tap(stack) -> None:
    """A queue of the test's own bound to every routing key, so every message that crosses the exchange stays."""
    connection = pika.BlockingConnection(pika.URLParameters(stack.amqp_url))
    channel = connection.channel()
    channel.queue_declare(TAP, durable=True)
    channel.queue_bind(TAP, "referrals", routing_key="#")
    connection.close()


def _every_queued_message(stack) -> list[str]:
    """Every message waiting in every queue of the stack's vhost (the tap, the services' queues, their retry and
    parking queues), read and left in place, each as its headers and body."""
    vhost = unquote(urlsplit(stack.amqp_url).path.lstrip("/"))
    listed = subprocess.run(["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name", "--no-table-headers"],
                            check=True, capture_output=True, text=True, timeout=60).stdout.split()  # fmt: skip
    assert TAP in listed and any("parking" in q or "parked" in q for q in listed), listed
    connection = pika.BlockingConnection(pika.URLParameters(stack.amqp_url))
    messages = []
    try:
        channel = connection.channel()
        for queue in listed:
            while (got := channel.basic_get(queue, auto_ack=False))[0] is not None:
                method, properties, body = got
                messages.append(f"{queue} {properties.headers} {properties.correlation_id} {body!r}")
        # closing the channel unacked returns every message to its queue
    finally:
        connection.close()
    return messages


def _drive(stack) -> str:
    """The referral's journey: offered, declined with a note, accepted, cared for, handed over, accepted."""
    police = stack.headers(*POLICE)
    _post(stack, "notifications", "/v1/subscriptions", police, {
        "url": f"{stack.webhooks.url}/hooks", "events": ["referral.received", "referral.allocated"]})  # fmt: skip
    referral_id = _post(stack, "intake", "/v1/referrals", police, canary_referral())["id"]

    a = _staff(stack, "charity-a")
    offers = wait_until(lambda: [o for o in _get(stack, "charity-a", "/v1/offers", a).json()
                                 if o["referral_id"] == referral_id and o["status"] == "pending"])  # fmt: skip
    _post(stack, "charity-a", f"/v1/offers/{offers[0]['id']}/decline", a,
          {"reason": "no_capacity", "note": f"Synthetic {CANARIES['decline_note']}."})  # fmt: skip

    b = _staff(stack, "charity-b")
    case_b = wait_until(lambda: _case_of(stack, "charity-b", referral_id), timeout=40)
    for path, body in casework():
        _post(stack, "charity-b", f"/v1/cases/{case_b}/{path}", b, body)

    planned = (datetime.now(UTC).date() + timedelta(days=7)).isoformat()
    transition = _post(stack, "charity-b", f"/v1/cases/{case_b}/transitions", b, {
        "kind": "provider_handover", "planned_for": planned, "receiving_provider_id": "charity-c"})["id"]  # fmt: skip
    _post(stack, "charity-b", f"/v1/cases/{case_b}/transitions/{transition}", b, {"checklist": ALL_DONE}, "patch")
    _post(stack, "charity-b", f"/v1/cases/{case_b}/transitions/{transition}/completion", b)
    c = _staff(stack, "charity-c")
    wait_until(lambda: any(h["id"] == transition for h in _get(stack, "charity-c", "/v1/handovers", c).json()))
    _post(stack, "charity-c", f"/v1/handovers/{transition}/accept", c)
    wait_until(lambda: _case_of(stack, "charity-c", referral_id), timeout=40)  # it fetched the referral
    for charity in ("charity-a", "charity-b", "charity-c"):  # every read of the page's API, once
        _get(stack, charity, "/v1/cases", _staff(stack, charity))
    stack.webhooks.wait_for(lambda items: len(items) >= 2)
    return referral_id


@pytest.fixture(scope="module")
def journey(stack):
    _tap(stack)
    return _drive(stack)


def test_no_canary_in_any_database_column_or_file(stack, journey):
    for name, url in stack.databases.items():
        engine = create_engine(url)
        try:
            assert canaries_left(engine) == {}, name
        finally:
            engine.dispose()
    assert canaries_in_files(stack.workdir) == {}  # SQLite's .db, -wal and -shm bytes (none on PostgreSQL)


def test_no_canary_in_any_message_queued_or_crossed(stack, journey):
    messages = _every_queued_message(stack)
    assert any(TAP in m for m in messages)  # the tap kept what crossed the exchange
    assert [m for m in messages if canaries_in(m)] == []


def test_no_canary_in_any_log_line_span_or_webhook(stack, journey):
    logs = stack.platform.logs()
    assert "DEBUG" in logs or '"debug"' in logs.lower()  # the most the services ever say
    assert [line for line in logs.splitlines() if canaries_in(line)] == []
    spans = list(stack.sink.items)
    assert spans
    leaked = [s for s in spans if canaries_in(f"{s.name} {s.attributes} {s.status} {s.events}")]
    assert leaked == []
    assert [w.path for w in stack.webhooks.items if canaries_in(w.body)] == []


def _data_keys(stack, name: str, referral_id: str) -> int:
    engine = create_engine(stack.databases[name])
    try:
        with engine.connect() as connection:
            assert "data_keys" in inspect(connection).get_table_names(), name
            query = text("SELECT COUNT(*) FROM data_keys WHERE referral_id = :id")
            return connection.execute(query, {"id": referral_id}).scalar_one()
    finally:
        engine.dispose()


def test_erasure_destroys_the_data_keys_everywhere(stack, journey):
    holders = ("intake", "charity-b", "charity-c")  # charity-c fetched the referral; charity-b keeps its notes
    assert {name: _data_keys(stack, name, journey) for name in holders} == dict.fromkeys(holders, 1)
    police = stack.headers(*POLICE)
    _post(stack, "intake", f"/v1/referrals/{journey}/erasure", police, {"reason": "Synthetic request."})

    def complete() -> bool:
        return _get(stack, "intake", f"/v1/referrals/{journey}/erasure", police).json()["status"] == "complete"

    wait_until(complete, timeout=60)
    everyone = ("intake", "charity-a", "charity-b", "charity-c")
    assert {name: _data_keys(stack, name, journey) for name in everyone} == dict.fromkeys(everyone, 0)
