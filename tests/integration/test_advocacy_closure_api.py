"""Closing a case and deactivating an advocate through advocacy's API on the real PostgreSQL (issue 12,
item 2): the closure's rows and its outbox events, a closed case refusing every write, and the 409 that
keeps an advocate with live cases active."""

from __future__ import annotations

import json

import pytest

from support.advocacy import PROVIDER, FakeIntake, accepted_case, add_advocate, confirmed, deliver, offered, staged

NOTE = "Synthetic note: moved in with a sister."


def open_case(advocacy) -> dict:
    case = accepted_case(advocacy)
    deliver(advocacy, confirmed(case), intake=FakeIntake())
    return case


def post(advocacy, path: str, body: dict | None = None):
    return advocacy.client.post(path, json=body if body is not None else {}, headers=advocacy.headers)


def test_closing_a_case_stops_its_clocks_cancels_its_transitions_frees_the_place_and_stages_case_closed(advocacy):
    case = open_case(advocacy)
    planned = post(advocacy, f"/v1/cases/{case['id']}/transitions", {"kind": "relocation", "planned_for": "2026-09-01"})
    assert planned.status_code == 201, planned.get_json()

    response = post(advocacy, f"/v1/cases/{case['id']}/closure", {"outcome": "returned_home", "note": NOTE})

    assert response.status_code == 200, response.get_json()
    closed = response.get_json()
    assert closed["status"] == "closed" and closed["closed_at"]
    assert closed["timeline"][-1]["kind"] == "case_closed" and NOTE in closed["timeline"][-1]["detail"]
    clocks = advocacy.client.get(f"/v1/cases/{case['id']}/nrm", headers=advocacy.headers).get_json()["clocks"]
    assert clocks and all(c["stopped_at"] and c["stopped_reason"] == "case closed: returned_home" for c in clocks)
    transitions = advocacy.client.get(f"/v1/cases/{case['id']}/transitions", headers=advocacy.headers).get_json()
    assert [t["status"] for t in transitions] == ["cancelled"]
    assert staged(advocacy, "case.closed") == [
        {
            "referral_id": case["referral_id"],
            "case_id": case["id"],
            "provider_id": PROVIDER,
            "outcome": "returned_home",
            "status": "closed",
            "local_authority_org_id": None,  # an adult's case
        }
    ]
    assert "sister" not in json.dumps(staged(advocacy, "case.closed"))
    assert staged(advocacy, "provider.capacity_changed")[-1]["capacity"] == 5
    [advocate] = advocacy.client.get("/v1/advocates", headers=advocacy.headers).get_json()
    assert advocate["caseload"] == 0


def test_every_write_to_a_closed_case_is_409(advocacy):
    case = open_case(advocacy)
    base = f"/v1/cases/{case['id']}"
    transition = post(advocacy, f"{base}/transitions", {"kind": "relocation", "planned_for": "2026-09-01"}).get_json()
    decision = post(
        advocacy, f"{base}/nrm/decisions", {"stage": "rg", "outcome": "positive", "decided_on": "2026-01-06"}
    )
    assert decision.status_code == 201, decision.get_json()
    assert post(advocacy, f"{base}/closure", {"outcome": "moved_on"}).status_code == 200
    writes = [
        ("POST", f"{base}/closure", {"outcome": "other"}),
        ("PUT", f"{base}/nrm", {"nrm_reference": "NRM-2026-1"}),
        ("POST", f"{base}/nrm/decisions", {"stage": "cg", "outcome": "positive", "decided_on": "2026-01-07"}),
        (
            "POST",
            f"{base}/nrm/reconsiderations",
            {"decision_id": decision.get_json()["id"], "requested_on": "2026-01-07"},
        ),
        ("POST", f"{base}/transitions", {"kind": "move_on", "planned_for": "2026-10-01"}),
        ("PATCH", f"{base}/transitions/{transition['id']}", {"planned_for": "2026-10-01"}),
        ("POST", f"{base}/transitions/{transition['id']}/completion", {}),
    ]
    for method, path, body in writes:
        response = advocacy.client.open(path, method=method, json=body, headers=advocacy.headers)
        assert response.status_code == 409, (method, path, response.get_json())
        assert "closed, not open" in response.get_json()["message"]
    assert len(staged(advocacy, "case.closed")) == 1


def test_a_closure_with_an_unknown_outcome_or_a_long_note_is_422_and_an_unknown_case_404(advocacy):
    case = open_case(advocacy)
    for body, field in [
        ({"outcome": "finished"}, "outcome"),
        ({}, "outcome"),
        ({"outcome": "died", "note": "x" * 401}, "note"),
    ]:
        response = post(advocacy, f"/v1/cases/{case['id']}/closure", body)
        assert response.status_code == 422 and field in response.get_json()["errors"]["json"]
    assert post(advocacy, "/v1/cases/no-such-case/closure", {"outcome": "other"}).status_code == 404
    assert staged(advocacy, "case.closed") == []


def test_an_advocate_with_live_cases_is_not_deactivated_until_they_are_closed_and_then_takes_no_offers(advocacy):
    case = open_case(advocacy)
    [advocate] = advocacy.client.get("/v1/advocates", headers=advocacy.headers).get_json()
    refused = post(advocacy, f"/v1/advocates/{advocate['id']}/deactivation")
    assert refused.status_code == 409
    assert "1 live case: hand them over" in refused.get_json()["message"]

    assert post(advocacy, f"/v1/cases/{case['id']}/closure", {"outcome": "transferred"}).status_code == 200
    done = post(advocacy, f"/v1/advocates/{advocate['id']}/deactivation")
    assert done.status_code == 200 and done.get_json()["active"] is False
    assert staged(advocacy, "provider.capacity_changed")[-1] | {"provider_id": PROVIDER} == {
        "provider_id": PROVIDER,
        "capacity": 0,
        "advocates": 0,
    }
    event = offered()
    deliver(advocacy, event, auto_accept=True)
    offers = advocacy.client.get("/v1/offers?status=pending", headers=advocacy.headers).get_json()
    assert [o["id"] for o in offers] == [event.data["offer_id"]]  # nobody active: it waits for a person
    assert post(advocacy, "/v1/advocates/no-such-advocate/deactivation").status_code == 404


@pytest.mark.parametrize(
    "reason",
    ["no_capacity", "eligibility", "complex_needs", "no_single_sex_place", "safety_conflict", "already_supported",
     "not_contactable", "other"],
)  # fmt: skip
def test_every_decline_code_is_accepted_and_stored(advocacy, reason):
    add_advocate(advocacy)
    event = offered()
    deliver(advocacy, event)
    response = post(advocacy, f"/v1/offers/{event.data['offer_id']}/decline", {"reason": reason})
    assert response.status_code == 200 and response.get_json()["decline_reason"] == reason
    assert staged(advocacy, "offer.declined")[-1]["reason"] == reason


@pytest.mark.parametrize("reason", ["out_of_area", "language", "risk"])
def test_the_old_decline_codes_are_422_naming_reason(advocacy, reason):
    event = offered()
    deliver(advocacy, event)
    response = post(advocacy, f"/v1/offers/{event.data['offer_id']}/decline", {"reason": reason})
    assert response.status_code == 422 and "reason" in response.get_json()["errors"]["json"]
