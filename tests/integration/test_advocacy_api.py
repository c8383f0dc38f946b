"""advocacy's HTTP API on the real PostgreSQL: advocates, offers (made by the `referral.offered`
handler, as the worker would), accept and decline with their outbox events, cases, and the errors."""

from __future__ import annotations

import dataclasses
import json
import threading
import uuid
import warnings

import pytest
from sqlalchemy import update

from services.advocacy.app import create_app
from services.advocacy.models import Advocate
from shared.messaging.envelope import Event
from shared.messaging.errors import PermanentError
from support.advocacy import SCOPES, Instance, add_advocate, deliver, outbox
from support.events import arriving, payload

PROVIDER = "charity-a"  # the conftest `advocacy` fixture's provider


def deliver_offer(advocacy: Instance, *, languages=("sq", "en"), provider_id: str = PROVIDER, **extra) -> Event:
    """Deliver a `referral.offered` as the worker does (the catalogue's checks, then the handler), and return
    the event. `extra` fields ride along in its payload, as a forger's would."""
    event = offered_event(languages=languages, provider_id=provider_id)
    event = dataclasses.replace(event, data={**event.data, **extra})
    deliver(advocacy, event)
    return event


def advocate(advocacy: Instance, name="Advocate Synthetic-Kalo", languages=("en",), max_caseload=5) -> dict:
    return add_advocate(advocacy, max_caseload, languages, name=name)


def offered_event(*, languages=("sq", "en"), provider_id: str = PROVIDER) -> Event:
    summary = {
        "is_child": False,
        "pathway": "nrm",
        "region": "london",
        "local_authority": "E09000033",
        "languages": list(languages),
        "interpreter_needed": True,
        "sex": "female",
        "exploitation_types": ["labour"],
        "needs": ["accommodation", "legal"],
        "immediate_danger": False,
        "re_trafficking_risk": "medium",
    }
    offer = payload(
        "referral.offered",
        referral_id=str(uuid.uuid4()),
        offer_id=str(uuid.uuid4()),
        provider_id=provider_id,
        org_id="met-police",
        offered_at="2026-01-05T10:00:00+00:00",
        respond_by="2026-01-06T10:00:00+00:00",
        summary=summary,
    )
    return arriving(offer)


# --- advocates ------------------------------------------------------------------------------------


def test_an_advocate_is_created_and_listed_with_an_empty_caseload(advocacy):
    body = {
        "name": "Advocate Synthetic-Mizu",
        "email": "mizu@charity-a.example",
        "languages": ["en", "sq"],
        "max_caseload": 12,
    }
    response = advocacy.client.post("/v1/advocates", json=body, headers=advocacy.headers)
    assert response.status_code == 201
    created = response.get_json()
    assert created == {**body, "id": created["id"], "caseload": 0, "active": True}
    listed = advocacy.client.get("/v1/advocates", headers=advocacy.headers).get_json()
    assert listed == [created]


def test_an_advocate_with_an_unknown_field_or_a_bad_language_is_rejected_naming_the_field(advocacy):
    body = {
        "name": "Advocate Synthetic-Ra",
        "email": "ra@charity-a.example",
        "languages": ["english"],
        "max_caseload": 5,
        "active": False,
    }
    response = advocacy.client.post("/v1/advocates", json=body, headers=advocacy.headers)
    assert response.status_code == 422
    errors = response.get_json()["errors"]["json"]
    assert errors["active"] == ["Unknown field."]
    assert "0" in str(errors["languages"]) and "ISO 639-1" in str(errors["languages"])


@pytest.mark.parametrize("max_caseload", [0, 101, "5"])
def test_max_caseload_must_be_a_whole_number_from_1_to_100(advocacy, max_caseload):
    body = {
        "name": "Advocate Synthetic-Lo",
        "email": "lo@charity-a.example",
        "languages": ["en"],
        "max_caseload": max_caseload,
    }
    response = advocacy.client.post("/v1/advocates", json=body, headers=advocacy.headers)
    assert response.status_code == 422
    assert "max_caseload" in response.get_json()["errors"]["json"]


def test_a_second_advocate_with_the_same_email_is_a_conflict(advocacy):
    body = {
        "name": "Advocate Synthetic-Ve",
        "email": "ve@charity-a.example",
        "languages": ["en"],
        "max_caseload": 3,
    }
    assert advocacy.client.post("/v1/advocates", json=body, headers=advocacy.headers).status_code == 201
    again = advocacy.client.post("/v1/advocates", json=body, headers=advocacy.headers)
    assert again.status_code == 409 and "ve@charity-a.example" in again.get_json()["message"]


# --- identity -------------------------------------------------------------------------------------


def test_no_token_is_401(advocacy):
    response = advocacy.client.get("/v1/offers")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_token_of_another_organisation_is_403_naming_the_provider_this_instance_serves(advocacy, auth_header):
    other = auth_header("charity-b", "provider", SCOPES)
    for method, path in [("get", "/v1/offers"), ("get", "/v1/cases"), ("post", "/v1/advocates")]:
        response = getattr(advocacy.client, method)(path, headers=other, json={} if method == "post" else None)
        assert response.status_code == 403
        assert response.get_json()["message"] == f"this instance serves provider {PROVIDER}"


def test_a_token_without_the_scope_is_403(advocacy, auth_header):
    reader = auth_header(PROVIDER, "provider", "cases:read")
    event = deliver_offer(advocacy)
    response = advocacy.client.post(f"/v1/offers/{event.data['offer_id']}/accept", json={}, headers=reader)
    assert response.status_code == 403 and "offers:respond" in response.get_json()["message"]


# --- offers ---------------------------------------------------------------------------------------


def test_an_offer_is_listed_with_its_minimised_summary_only(advocacy):
    event = deliver_offer(advocacy)
    with pytest.raises(PermanentError, match="does not match its schema"):  # refused before any handler
        deliver_offer(advocacy, given_name="Synthetic-Name", narrative="Synthetic narrative")
    with pytest.raises(PermanentError, match="addressed to another"):
        deliver_offer(advocacy, provider_id="charity-b")
    response = advocacy.client.get("/v1/offers", headers=advocacy.headers)
    assert response.status_code == 200
    assert json.loads(response.headers["X-Pagination"])["total"] == 1
    [offer] = response.get_json()
    assert offer["id"] == event.data["offer_id"] and offer["referral_id"] == event.data["referral_id"]
    assert offer["status"] == "pending" and offer["case_id"] is None and offer["responded_at"] is None
    assert offer["offered_at"] == "2026-01-05T10:00:00+00:00"
    assert offer["respond_by"] == "2026-01-06T10:00:00+00:00"
    assert offer["summary"]["languages"] == ["sq", "en"] and offer["summary"]["region"] == "london"
    assert "Synthetic-Name" not in response.get_data(as_text=True)
    assert "narrative" not in response.get_data(as_text=True)


def test_offers_filter_by_status_and_paginate(advocacy):
    advocate(advocacy, max_caseload=10)
    events = [deliver_offer(advocacy) for _ in range(3)]
    accepted = events[0].data["offer_id"]
    assert advocacy.client.post(f"/v1/offers/{accepted}/accept", json={}, headers=advocacy.headers).status_code == 200
    pending = advocacy.client.get("/v1/offers?status=pending", headers=advocacy.headers).get_json()
    assert {o["id"] for o in pending} == {e.data["offer_id"] for e in events[1:]}
    page = advocacy.client.get("/v1/offers?page=2&page_size=2", headers=advocacy.headers)
    assert len(page.get_json()) == 1 and json.loads(page.headers["X-Pagination"])["total"] == 3
    bad = advocacy.client.get("/v1/offers?status=lost", headers=advocacy.headers)
    assert bad.status_code == 422 and "status" in bad.get_json()["errors"]["query"]


def test_accepting_an_offer_opens_a_case_and_stages_offer_accepted_in_the_same_transaction(advocacy):
    english = advocate(advocacy, "Advocate Synthetic-Zu", ["en"])
    albanian = advocate(advocacy, "Advocate Synthetic-Qe", ["sq"])
    event = deliver_offer(advocacy, languages=["sq"])
    offer_id, referral_id = event.data["offer_id"], event.data["referral_id"]

    response = advocacy.client.post(f"/v1/offers/{offer_id}/accept", json={}, headers=advocacy.headers)
    assert response.status_code == 200
    case = response.get_json()
    assert case["status"] == "opening" and case["referral"] is None
    assert case["offer_id"] == offer_id and case["referral_id"] == referral_id
    assert case["advocate"] == {"id": albanian["id"], "name": albanian["name"], "email": albanian["email"]}
    assert [entry["kind"] for entry in case["timeline"]] == ["offer_received", "offer_accepted"]

    [staged] = outbox(advocacy, "offer.accepted")
    assert staged["subject"] == referral_id and staged["source"] == f"/advocacy/{PROVIDER}"
    data = staged["data"]
    assert data["case_id"] == case["id"] and data["offer_id"] == offer_id and data["provider_id"] == PROVIDER
    assert data["advocate"] == {"name": albanian["name"], "email": albanian["email"]}
    assert data["accepted_at"]

    offer = advocacy.client.get("/v1/offers", headers=advocacy.headers).get_json()[0]
    assert offer["status"] == "accepted" and offer["case_id"] == case["id"] and offer["responded_at"]
    loads = {a["id"]: a["caseload"] for a in advocacy.client.get("/v1/advocates", headers=advocacy.headers).get_json()}
    assert loads == {english["id"]: 0, albanian["id"]: 1}
    assert advocacy.client.get(f"/v1/cases/{case['id']}", headers=advocacy.headers).get_json() == case


def test_accept_with_a_named_advocate_assigns_them(advocacy):
    advocate(advocacy, languages=["sq"])
    chosen = advocate(advocacy, languages=["de"])
    offer_id = deliver_offer(advocacy, languages=["sq"]).data["offer_id"]
    body = {"advocate_id": chosen["id"]}
    case = advocacy.client.post(f"/v1/offers/{offer_id}/accept", json=body, headers=advocacy.headers).get_json()
    assert case["advocate"]["id"] == chosen["id"]


def test_an_offer_can_be_answered_only_once(advocacy):
    advocate(advocacy)
    offer_id = deliver_offer(advocacy).data["offer_id"]
    assert advocacy.client.post(f"/v1/offers/{offer_id}/accept", json={}, headers=advocacy.headers).status_code == 200
    again = advocacy.client.post(f"/v1/offers/{offer_id}/accept", json={}, headers=advocacy.headers)
    assert again.status_code == 409 and "is accepted, not pending" in again.get_json()["message"]
    decline = advocacy.client.post(f"/v1/offers/{offer_id}/decline", json={"reason": "other"}, headers=advocacy.headers)
    assert decline.status_code == 409
    assert len(outbox(advocacy, "offer.accepted")) == 1 and outbox(advocacy, "offer.declined") == []


def test_a_named_advocate_at_their_maximum_or_inactive_cannot_take_the_case(advocacy):
    full = advocate(advocacy, max_caseload=1)
    first, second = deliver_offer(advocacy).data["offer_id"], deliver_offer(advocacy).data["offer_id"]
    body = {"advocate_id": full["id"]}
    assert advocacy.client.post(f"/v1/offers/{first}/accept", json=body, headers=advocacy.headers).status_code == 200
    response = advocacy.client.post(f"/v1/offers/{second}/accept", json=body, headers=advocacy.headers)
    assert response.status_code == 409 and "maximum caseload (1/1)" in response.get_json()["message"]

    idle = advocate(advocacy)
    with advocacy.sessions.begin() as session:
        session.execute(update(Advocate).where(Advocate.id == idle["id"]).values(active=False))
    response = advocacy.client.post(
        f"/v1/offers/{second}/accept", json={"advocate_id": idle["id"]}, headers=advocacy.headers
    )
    assert response.status_code == 409 and "inactive" in response.get_json()["message"]
    assert advocacy.client.get("/v1/offers?status=pending", headers=advocacy.headers).get_json()[0]["id"] == second


def test_accept_without_a_named_advocate_when_nobody_has_room_is_409_and_the_offer_stays_pending(advocacy):
    advocate(advocacy, max_caseload=1)
    first, second = deliver_offer(advocacy).data["offer_id"], deliver_offer(advocacy).data["offer_id"]
    assert advocacy.client.post(f"/v1/offers/{first}/accept", json={}, headers=advocacy.headers).status_code == 200
    response = advocacy.client.post(f"/v1/offers/{second}/accept", json={}, headers=advocacy.headers)
    assert response.status_code == 409 and "no active advocate has room" in response.get_json()["message"]
    assert len(outbox(advocacy, "offer.accepted")) == 1


def test_two_accepts_at_the_same_moment_cannot_give_an_advocate_more_than_their_maximum(advocacy):
    advocate(advocacy, max_caseload=1)
    offers = [deliver_offer(advocacy).data["offer_id"] for _ in range(2)]
    start = threading.Barrier(len(offers))
    statuses: list[int] = []

    def accept(offer_id: str) -> None:
        client = advocacy.client.application.test_client()
        start.wait()
        statuses.append(client.post(f"/v1/offers/{offer_id}/accept", json={}, headers=advocacy.headers).status_code)

    threads = [threading.Thread(target=accept, args=(offer_id,)) for offer_id in offers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(statuses) == [200, 409]
    assert len(outbox(advocacy, "offer.accepted")) == 1


def test_declining_stages_offer_declined_with_the_reason_and_keeps_the_note_local(advocacy):
    event = deliver_offer(advocacy)
    offer_id = event.data["offer_id"]
    body = {"reason": "no_single_sex_place", "note": "Synthetic note: we cover the north only."}
    response = advocacy.client.post(f"/v1/offers/{offer_id}/decline", json=body, headers=advocacy.headers)
    assert response.status_code == 200
    offer = response.get_json()
    assert offer["status"] == "declined" and offer["decline_reason"] == "no_single_sex_place"
    assert offer["decline_note"] == body["note"] and offer["responded_at"]
    [staged] = outbox(advocacy, "offer.declined")
    assert staged["data"]["reason"] == "no_single_sex_place" and staged["data"]["offer_id"] == offer_id
    assert staged["data"]["referral_id"] == event.data["referral_id"] and staged["data"]["declined_at"]
    assert "note" not in json.dumps(staged)
    assert outbox(advocacy, "offer.accepted") == []


def test_a_decline_with_a_bad_reason_or_an_unknown_field_is_422_naming_it(advocacy):
    offer_id = deliver_offer(advocacy).data["offer_id"]
    bad = advocacy.client.post(f"/v1/offers/{offer_id}/decline", json={"reason": "busy"}, headers=advocacy.headers)
    assert bad.status_code == 422 and "reason" in bad.get_json()["errors"]["json"]
    extra = advocacy.client.post(
        f"/v1/offers/{offer_id}/decline",
        json={"reason": "safety_conflict", "status": "accepted"},
        headers=advocacy.headers,
    )
    assert extra.status_code == 422 and extra.get_json()["errors"]["json"]["status"] == ["Unknown field."]
    long_note = advocacy.client.post(
        f"/v1/offers/{offer_id}/decline",
        json={"reason": "safety_conflict", "note": "x" * 2001},
        headers=advocacy.headers,
    )
    assert long_note.status_code == 422 and "note" in long_note.get_json()["errors"]["json"]
    malformed = advocacy.client.post(
        f"/v1/offers/{offer_id}/decline", data="{", content_type="application/json", headers=advocacy.headers
    )
    assert malformed.status_code == 422
    assert outbox(advocacy, "offer.declined") == []


def test_unknown_offers_cases_and_advocates_are_404(advocacy):
    unknown = str(uuid.uuid4())
    for path, body in [
        (f"/v1/offers/{unknown}/accept", {}),
        (f"/v1/offers/{unknown}/decline", {"reason": "safety_conflict"}),
    ]:
        response = advocacy.client.post(path, json=body, headers=advocacy.headers)
        assert response.status_code == 404 and unknown in response.get_json()["message"]
    assert advocacy.client.get(f"/v1/cases/{unknown}", headers=advocacy.headers).status_code == 404
    offer_id = deliver_offer(advocacy).data["offer_id"]
    response = advocacy.client.post(
        f"/v1/offers/{offer_id}/accept", json={"advocate_id": unknown}, headers=advocacy.headers
    )
    assert response.status_code == 404 and "advocate" in response.get_json()["message"]


# --- cases ----------------------------------------------------------------------------------------


def test_cases_are_listed_without_the_referral_filtered_by_status_and_paginated(advocacy):
    advocate(advocacy, max_caseload=10)
    for _ in range(2):
        offer_id = deliver_offer(advocacy).data["offer_id"]
        assert (
            advocacy.client.post(f"/v1/offers/{offer_id}/accept", json={}, headers=advocacy.headers).status_code == 200
        )
    response = advocacy.client.get("/v1/cases?status=opening&page_size=1", headers=advocacy.headers)
    assert response.status_code == 200 and json.loads(response.headers["X-Pagination"])["total"] == 2
    [case] = response.get_json()
    assert case["status"] == "opening" and "referral" not in case and "timeline" not in case
    assert advocacy.client.get("/v1/cases?status=open", headers=advocacy.headers).get_json() == []


def test_the_openapi_document_builds_without_warnings(advocacy):
    # apispec warns (e.g. about duplicate schema names) while blueprints register and the spec is served.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        app = create_app(advocacy.advocacy.settings)
        response = app.test_client().get("/openapi.json")
    app.extensions["advocacy"].engine.dispose()
    assert response.status_code == 200
    assert [str(w.message) for w in caught if "apispec" in (w.filename + str(w.message)).lower()] == []
    paths = response.get_json()["paths"]
    for path in [
        "/v1/advocates",
        "/v1/offers",
        "/v1/offers/{offer_id}/accept",
        "/v1/offers/{offer_id}/decline",
        "/v1/cases",
        "/v1/cases/{case_id}",
    ]:
        assert path in paths
    assert advocacy.client.get("/readyz").status_code == 200
    assert advocacy.client.get("/healthz").get_json()["service"] == "advocacy"
