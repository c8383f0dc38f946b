"""Routing across charity instances, run as processes: declines cascade, deadlines expire, escalations reach
a coordinator who re-offers by hand, capacity and age groups are respected."""

from __future__ import annotations

import time

import pytest
import requests
from opentelemetry.instrumentation.utils import suppress_instrumentation

from shared.testing import referral_body
from support.stack import Charity, platform_stack

AGENCY = ("met-police", "police", "referrals:write referrals:read subscriptions:write")
COORDINATOR = ("london-coordination", "coordinator", "referrals:read referrals:write")
STAFF = "offers:respond cases:read cases:write"
ADVOCATE = {"name": "Advocate Synthetic-Lo", "email": "lo@demo-charity.example", "languages": ["en"]}
# Deadlines: 24 hours, but a few seconds in north_east, so a test can watch one pass.
ENV = {"OFFER_RESPONSE_HOURS_BY_REGION": "north_east=0.002", "OFFER_SWEEP_SECONDS": "0.3"}
CHARITIES = (
    Charity("charity-a", auto_accept=False, regions=("london", "north_east"), languages=("en", "sq")),
    Charity("charity-b", auto_accept=False, regions=("london", "north_east"), serves=("adult",), languages=("ro",)),
    # charity-c runs as a small charity would: its worker's loops inside its API process (WORKER_IN_API).
    Charity(
        "charity-c", auto_accept=True, regions=("wales",), advocates=(ADVOCATE,), max_caseload=1, worker_in_api=True
    ),
)


@pytest.fixture(scope="module")
def stack(broker_url, pg_admin_url, dev_keys, make_token, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("routing")
    with platform_stack(
        broker_url, pg_admin_url, dev_keys, make_token, workdir, extra_env=ENV, charities=CHARITIES
    ) as s:
        yield s


def call(stack, method: str, service: str, path: str, who: tuple[str, str, str], **kwargs):
    with suppress_instrumentation():
        return requests.request(
            method, f"{stack.url(service)}{path}", headers=stack.headers(*who), timeout=10, **kwargs
        )


def refer(stack, **overrides) -> str:
    response = call(stack, "POST", "intake", "/v1/referrals", AGENCY, json=referral_body(**overrides))
    assert response.status_code == 201, response.text
    return response.json()["id"]


def referral(stack, referral_id: str) -> dict:
    return call(stack, "GET", "intake", f"/v1/referrals/{referral_id}", AGENCY).json()


def offer_at(stack, charity: str, referral_id: str, timeout: float = 20) -> dict:
    """Wait until the charity's instance holds a pending offer for the referral."""
    staff = (charity, "provider", STAFF)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        offers = call(stack, "GET", charity, "/v1/offers?status=pending", staff).json()
        for offer in offers:
            if offer["referral_id"] == referral_id:
                return offer
        time.sleep(0.1)
    raise AssertionError(f"{charity} never received an offer for {referral_id}")


def answer(stack, charity: str, offer: dict, verb: str, **body) -> None:
    response = call(stack, "POST", charity, f"/v1/offers/{offer['id']}/{verb}", (charity, "provider", STAFF), json=body)
    assert response.status_code == 200, response.text


def wait_status(stack, referral_id: str, status: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = referral(stack, referral_id)
        if found["status"] == status:
            return found
        time.sleep(0.1)
    raise AssertionError(f"referral is {found['status']}, not {status}")


def albanian(**overrides) -> dict:
    subject = referral_body()["subject"] | {"languages": ["sq"]}
    return {"subject": subject, **overrides}


def test_a_referral_declined_by_a_is_allocated_at_b(stack):
    referral_id = refer(stack, **albanian())
    answer(stack, "charity-a", offer_at(stack, "charity-a", referral_id), "decline", reason="no_capacity")
    answer(stack, "charity-b", offer_at(stack, "charity-b", referral_id), "accept")
    allocated = wait_status(stack, referral_id, "allocated")
    assert allocated["allocation"]["provider_id"] == "charity-b"
    history = [(o["provider_id"], o["status"], o["decline_reason"]) for o in allocated["offers"]]
    assert history == [("charity-a", "declined", "no_capacity"), ("charity-b", "accepted", None)]


def test_an_offer_left_unanswered_past_its_deadline_moves_to_the_next_provider(stack):
    referral_id = refer(stack, **albanian(location={"region": "north_east"}))
    offer_at(stack, "charity-a", referral_id)
    answer(stack, "charity-b", offer_at(stack, "charity-b", referral_id, timeout=30), "accept")
    allocated = wait_status(stack, referral_id, "allocated")
    assert [(o["provider_id"], o["status"]) for o in allocated["offers"]] == [
        ("charity-a", "expired"),
        ("charity-b", "accepted"),
    ]
    expired = call(stack, "GET", "charity-a", "/v1/offers", ("charity-a", "provider", STAFF)).json()
    assert any(o["referral_id"] == referral_id and o["status"] == "expired" for o in expired)


def test_when_everyone_declines_a_coordinator_sees_the_escalation_and_re_offers_it(stack):
    referral_id = refer(stack, **albanian())
    answer(stack, "charity-a", offer_at(stack, "charity-a", referral_id), "decline", reason="complex_needs")
    answer(stack, "charity-b", offer_at(stack, "charity-b", referral_id), "decline", reason="safety_conflict")
    wait_status(stack, referral_id, "escalated")
    queue = call(stack, "GET", "intake", "/v1/escalations", COORDINATOR).json()
    escalation = next(e for e in queue if e["referral_id"] == referral_id)
    assert escalation["reason"] == "none_accepted"
    assert "given_name" not in str(escalation)
    assert call(stack, "GET", "intake", "/v1/escalations", AGENCY).status_code == 403

    response = call(stack, "POST", "intake", f"/v1/referrals/{referral_id}/offers", COORDINATOR,
                    json={"provider_id": "charity-a"})  # fmt: skip
    assert response.status_code == 201, response.text
    answer(stack, "charity-a", offer_at(stack, "charity-a", referral_id), "accept")
    assert wait_status(stack, referral_id, "allocated")["allocation"]["provider_id"] == "charity-a"
    queue = call(stack, "GET", "intake", "/v1/escalations", COORDINATOR).json()
    assert referral_id not in {e["referral_id"] for e in queue}


def test_a_provider_at_capacity_is_never_offered_a_referral(stack):
    assert "charity-c-worker" not in {p.name for p in stack.platform.processes}  # its API does the worker's part
    first = refer(stack, location={"region": "wales"})
    wait_status(stack, first, "allocated")  # charity-c's only place is taken (accepted by its auto-accept) ...
    admin = ("platform", "coordinator", "providers:admin")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # ... and its own instance has told intake's directory so
        providers = {p["id"]: p for p in call(stack, "GET", "intake", "/v1/providers", admin).json()}
        if providers["charity-c"]["capacity"] == 0:
            break
        time.sleep(0.1)
    assert providers["charity-c"]["capacity"] == 0 and providers["charity-c"]["capacity_reported_at"]
    second = refer(stack, location={"region": "wales"})
    found = wait_status(stack, second, "escalated")
    assert found["offers"] == []
    offers = call(stack, "GET", "charity-c", "/v1/offers", ("charity-c", "provider", STAFF)).json()
    assert [o["referral_id"] for o in offers] == [first]


def test_an_adult_only_provider_never_receives_a_child(stack):
    romanian_child = referral_body(child=True)
    romanian_child["subject"]["languages"] = ["ro"]  # charity-b shares the language, but serves adults only
    referral_id = refer(stack, subject=romanian_child["subject"], exploitation=romanian_child["exploitation"])
    offer_at(stack, "charity-a", referral_id)
    pending_at_b = call(stack, "GET", "charity-b", "/v1/offers", ("charity-b", "provider", STAFF)).json()
    assert referral_id not in {o["referral_id"] for o in pending_at_b}
    assert [o["provider_id"] for o in referral(stack, referral_id)["offers"]] == ["charity-a"]


def test_withdrawal_cancels_a_pending_offer_and_closes_an_opened_case_at_the_provider(stack):
    staff = ("charity-a", "provider", STAFF)
    pending = refer(stack, **albanian())
    offer = offer_at(stack, "charity-a", pending)
    allocated = refer(stack, **albanian())
    answer(stack, "charity-a", offer_at(stack, "charity-a", allocated), "accept")
    case_id = wait_status(stack, allocated, "allocated")["allocation"]["case_id"]
    for referral_id in (pending, allocated):
        response = call(stack, "POST", "intake", f"/v1/referrals/{referral_id}/withdrawal", AGENCY)
        assert response.status_code == 200 and response.json()["status"] == "withdrawn"

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        offers = {o["id"]: o for o in call(stack, "GET", "charity-a", "/v1/offers", staff).json()}
        case = call(stack, "GET", "charity-a", f"/v1/cases/{case_id}", staff).json()
        if offers[offer["id"]]["status"] == "withdrawn" and case["status"] == "closed":
            break
        time.sleep(0.1)
    assert offers[offer["id"]]["status"] == "withdrawn"
    assert case["status"] == "closed"
    assert "referral_withdrawn" in [entry["kind"] for entry in case["timeline"]]
