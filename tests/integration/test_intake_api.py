"""intake's API on the real PostgreSQL: validation, identity, idempotency, pathways, disclosure."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select, text

from services.intake.models import Disclosure, Offer, Outbox, Referral
from shared.testing import referral_body
from support.db import count, statements_sent

POLICE = ("met-police", "police", "referrals:write referrals:read")
ADMIN = ("platform", "coordinator", "providers:admin")
DEMO_PROVIDER = {"name": "Demo", "regions": ["london"], "serves": ["adult", "child"], "capacity": 5}


@pytest.fixture
def client(intake, auth_header):
    app, _ = intake
    c = app.test_client()
    assert c.put("/v1/providers/demo-charity", json=DEMO_PROVIDER, headers=auth_header(*ADMIN)).status_code == 201
    return c


def post(client, auth_header, body, who=POLICE):
    return client.post("/v1/referrals", json=body, headers=auth_header(*who))


def test_a_valid_referral_is_stored_offered_and_its_events_staged(client, auth_header, intake):
    response = post(client, auth_header, referral_body())
    assert response.status_code == 201
    created = response.get_json()
    assert response.headers["Location"].endswith(f"/v1/referrals/{created['id']}")
    assert created["status"] == "offered" and created["pathway"] == "nrm" and created["allocation"] is None
    with intake[1]() as session:
        staged = {r.routing_key: json.loads(r.payload) for r in session.scalars(select(Outbox))}
    assert sorted(staged) == ["referral.offered.demo-charity", "referral.received"]
    assert staged["referral.received"]["data"]["status"] == "received"  # as it arrived, before routing
    offered = staged["referral.offered.demo-charity"]["data"]
    assert offered["provider_id"] == "demo-charity" and offered["summary"]["region"]  # the minimised summary
    assert "external_reference" not in offered  # the referrer's own reference is not a charity's business


def bad_bodies():
    def change(fn):
        body = referral_body()
        fn(body)
        return body

    yield "wrong type", change(lambda b: b.update(needs="legal")), ["needs"]
    yield "unknown field", change(lambda b: b.update(is_admin=True)), ["is_admin"]
    yield "unknown nested field", change(lambda b: b["subject"].update(ssn="1")), ["subject", "ssn"]
    yield "missing required", change(lambda b: b.pop("referrer")), ["referrer"]
    yield "missing nested required", change(lambda b: b["referrer"].pop("email")), ["referrer", "email"]
    yield (
        "age out of range",
        change(lambda b: b["subject"].update(age_estimate=121, date_of_birth=None)),
        [
            "subject",
            "age_estimate",
        ],
    )
    yield "bad enum", change(lambda b: b["location"].update(region="atlantis")), ["location", "region"]
    yield (
        "bad exploitation enum",
        change(lambda b: b["exploitation"][0].update(type="x")),
        ["exploitation", "0", "type"],
    )
    yield "no exploitation", change(lambda b: b.update(exploitation=[])), ["exploitation"]
    yield (
        "bad language",
        change(lambda b: b["subject"].update(languages=["xx"])),
        ["subject", "languages", "0"],
    )
    yield (
        "bad nationality",
        change(lambda b: b["subject"].update(nationality="XX")),
        ["subject", "nationality"],
    )
    yield "no age", change(lambda b: b["subject"].pop("date_of_birth")), ["subject", "date_of_birth"]
    yield (
        "future birth",
        change(lambda b: b["subject"].update(date_of_birth="2999-01-01")),
        [
            "subject",
            "date_of_birth",
        ],
    )
    yield "oversized narrative", change(lambda b: b.update(narrative="x" * 20_001)), ["narrative"]
    yield "adult without consent", change(lambda b: b.pop("consent")), ["consent"]
    yield (
        "reference too long",
        change(lambda b: b.update(external_reference="r" * 65)),
        ["external_reference"],
    )


@pytest.mark.parametrize(("case", "body", "path"), list(bad_bodies()), ids=[c for c, _, _ in bad_bodies()])
def test_bad_input_is_a_422_naming_the_field_and_nothing_is_stored(client, auth_header, intake, case, body, path):
    response = post(client, auth_header, body)
    assert response.status_code == 422, response.get_json()
    errors = response.get_json()["errors"]["json"]
    for key in path:
        assert key in errors, f"{case}: {errors}"
        errors = errors[key]
    assert count(intake[1], Referral) == 0 and count(intake[1], Outbox) == 0


def test_malformed_json_is_a_422_on_the_body(client, auth_header, intake):
    response = client.post(
        "/v1/referrals", data="{not json", content_type="application/json", headers=auth_header(*POLICE)
    )
    assert response.status_code == 422
    assert "_schema" in response.get_json()["errors"]["json"]
    assert count(intake[1], Referral) == 0


def test_a_body_over_the_size_limit_is_refused_before_it_is_read(client, auth_header, intake):
    body = json.dumps(referral_body(narrative="x" * 300_000))
    response = client.post("/v1/referrals", data=body, content_type="application/json", headers=auth_header(*POLICE))
    assert response.status_code == 413
    assert count(intake[1], Referral) == 0


@pytest.mark.parametrize(
    "header",
    [None, "Bearer not-a-jwt", "Basic dXNlcjpwYXNz"],
    ids=["no token", "garbage token", "not bearer"],
)
def test_without_a_valid_token_the_answer_is_401(client, intake, header):
    headers = {"Authorization": header} if header else {}
    response = client.post("/v1/referrals", json=referral_body(), headers=headers)
    assert response.status_code == 401
    assert "WWW-Authenticate" in response.headers
    assert count(intake[1], Referral) == 0


def test_an_expired_token_is_401(client, make_token):
    token = make_token(*POLICE, ttl=-60)
    response = client.post("/v1/referrals", json=referral_body(), headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


def test_a_token_signed_by_another_key_is_401(client, tmp_path):
    from shared.auth.tokens import ensure_dev_keys, mint_token

    other, _, _ = ensure_dev_keys(tmp_path)
    token = mint_token(other.read_text(), org="met-police", org_kind="police", scopes=["referrals:write"],
                       issuer="referrals-dev", audience="referrals")  # fmt: skip
    assert client.get("/v1/referrals", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_a_token_without_the_scope_is_403(client, auth_header):
    response = post(client, auth_header, referral_body(), who=("met-police", "police", "referrals:read"))
    assert response.status_code == 403


def test_another_orgs_referral_is_404_never_403(client, auth_header):
    created = post(client, auth_header, referral_body()).get_json()
    other = ("kent-police", "police", "referrals:read referrals:write")
    assert client.get(f"/v1/referrals/{created['id']}", headers=auth_header(*other)).status_code == 404
    assert client.post(f"/v1/referrals/{created['id']}/withdrawal", headers=auth_header(*other)).status_code == 404
    assert client.get("/v1/referrals", headers=auth_header(*other)).get_json() == []


def test_the_same_reference_and_body_again_returns_the_same_referral_with_200(client, auth_header, intake):
    body = referral_body()
    first = post(client, auth_header, body)
    again = post(client, auth_header, body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.get_json()["id"] == first.get_json()["id"]
    assert count(intake[1], Referral) == 1 and count(intake[1], Outbox) == 2


def test_the_same_reference_with_another_body_is_a_409(client, auth_header, intake):
    body = referral_body()
    post(client, auth_header, body)
    response = post(client, auth_header, {**body, "narrative": "A different account."})
    assert response.status_code == 409
    assert count(intake[1], Referral) == 1


def test_two_identical_posts_at_once_make_one_referral(intake, auth_header):
    app, sessions = intake
    body = referral_body()
    headers = auth_header(*POLICE)

    def send(_):
        with app.test_client() as c:
            return c.post("/v1/referrals", json=body, headers=headers)

    with ThreadPoolExecutor(max_workers=4) as pool:
        responses = list(pool.map(send, range(4)))
    assert sorted(r.status_code for r in responses) == [200, 200, 200, 201]
    assert len({r.get_json()["id"] for r in responses}) == 1
    assert count(sessions, Referral) == 1 and count(sessions, Outbox) == 2  # received, escalated (no provider)


def test_a_child_is_routed_without_consent(client, auth_header):
    created = post(client, auth_header, referral_body(child=True)).get_json()
    assert created["is_child"] is True and created["pathway"] == "nrm" and created["status"] == "offered"


def test_adult_without_nrm_consent_is_a_duty_to_notify_with_no_identifier_in_the_database(client, auth_header, intake):
    body = referral_body(
        consent={"nrm_referral": False, "advocacy": False, "data_sharing": False},
    )
    created = post(client, auth_header, body).get_json()
    assert created["pathway"] == "duty_to_notify" and created["status"] == "recorded"
    with intake[1]() as session:
        row = session.execute(text("SELECT * FROM referrals WHERE id = :id"), {"id": created["id"]}).mappings().one()
        offers = session.scalars(select(Offer)).all()
    stored = json.dumps({k: str(v) for k, v in row.items()})
    subject = body["subject"]
    for identifier in (
        subject["given_name"],
        subject["family_name"],
        subject["aliases"][0],
        subject["date_of_birth"],
    ):
        assert identifier not in stored
    assert "safe_contact" not in stored and "narrative" not in stored
    assert offers == []  # recorded for statistics, never routed


def test_an_adult_without_advocacy_consent_is_recorded(client, auth_header):
    body = referral_body(consent={"nrm_referral": True, "advocacy": False, "data_sharing": True})
    assert post(client, auth_header, body).get_json()["status"] == "recorded"


def test_with_no_eligible_provider_a_referral_is_escalated(client, auth_header):
    body = referral_body(location={"region": "wales"})
    assert post(client, auth_header, body).get_json()["status"] == "escalated"


def test_the_allocated_provider_reads_the_referral_and_the_disclosure_is_logged(client, auth_header, intake):
    created = post(client, auth_header, referral_body()).get_json()
    provider = ("demo-charity", "provider", "referrals:read")
    assert client.get(f"/v1/referrals/{created['id']}", headers=auth_header(*provider)).status_code == 404
    with intake[1].begin() as session:
        referral = session.get(Referral, created["id"])
        referral.status, referral.provider_id = "allocated", "demo-charity"
    response = client.get(f"/v1/referrals/{created['id']}", headers=auth_header(*provider))
    assert response.status_code == 200 and response.get_json()["subject"]["given_name"]
    with intake[1]() as session:
        disclosure = session.scalars(select(Disclosure).where(Disclosure.purpose == "case_opening")).one()
    assert (disclosure.referral_id, disclosure.recipient_org) == (created["id"], "demo-charity")
    assert disclosure.recipient_kind == "provider"


def test_the_referring_org_lists_its_referrals_by_status(client, auth_header):
    post(client, auth_header, referral_body())
    post(client, auth_header, referral_body(location={"region": "wales"}))
    listed = client.get("/v1/referrals?status=escalated", headers=auth_header(*POLICE))
    assert [r["status"] for r in listed.get_json()] == ["escalated"]
    assert json.loads(listed.headers["X-Pagination"])["total"] == 1
    assert client.get("/v1/referrals?status=lost", headers=auth_header(*POLICE)).status_code == 422


def test_withdrawal_cancels_the_pending_offer_and_tells_the_provider(client, auth_header, intake):
    created = post(client, auth_header, referral_body()).get_json()
    response = client.post(f"/v1/referrals/{created['id']}/withdrawal", headers=auth_header(*POLICE))
    assert response.status_code == 200 and response.get_json()["status"] == "withdrawn"
    with intake[1]() as session:
        assert session.scalars(select(Offer.status)).all() == ["withdrawn"]
        withdrawn = session.scalars(select(Outbox).where(Outbox.type == "referral.withdrawn")).one()
    assert json.loads(withdrawn.payload)["data"]["provider_id"] == "demo-charity"
    again = client.post(f"/v1/referrals/{created['id']}/withdrawal", headers=auth_header(*POLICE))
    assert again.status_code == 409


def test_the_provider_directory_validates_and_lists(client, auth_header):
    headers = auth_header(*ADMIN)
    bad = client.put("/v1/providers/Bad_Id", json=DEMO_PROVIDER, headers=headers)
    assert bad.status_code == 422
    wrong = client.put("/v1/providers/north", json={**DEMO_PROVIDER, "serves": ["elderly"]}, headers=headers)
    assert wrong.status_code == 422 and "serves" in wrong.get_json()["errors"]["json"]
    assert client.put("/v1/providers/demo-charity", json=DEMO_PROVIDER, headers=headers).status_code == 200
    assert [p["id"] for p in client.get("/v1/providers", headers=headers).get_json()] == ["demo-charity"]
    assert client.get("/v1/providers", headers=auth_header(*POLICE)).status_code == 403


def test_the_openapi_document_and_docs_are_served(client):
    spec = client.get("/openapi.json").get_json()
    assert "/v1/referrals" in spec["paths"] and "/v1/providers/{provider_id}" in spec["paths"]
    assert client.get("/docs").status_code == 200
    assert client.get("/docs/assets/swagger-ui-bundle.js").status_code == 200
    assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200


COORDINATOR = ("regional-coordination", "coordinator", "referrals:read referrals:write")


def test_a_person_in_immediate_danger_is_escalated_to_a_coordinator_as_well_as_offered(client, auth_header, intake):
    body = referral_body(risk={"immediate_danger": True, "re_trafficking_risk": "high"})
    created = post(client, auth_header, body).get_json()
    assert created["status"] == "offered"
    queue = client.get("/v1/escalations", headers=auth_header(*COORDINATOR)).get_json()
    assert [(e["referral_id"], e["reason"]) for e in queue] == [(created["id"], "immediate_danger")]
    assert queue[0]["summary"]["immediate_danger"] is True
    assert body["subject"]["given_name"] not in json.dumps(queue)
    with intake[1]() as session:
        escalated = session.scalars(select(Outbox).where(Outbox.type == "referral.escalated")).one()
    assert json.loads(escalated.payload)["data"]["reason"] == "immediate_danger"


def test_the_referrer_sees_the_offer_history_and_a_coordinator_sees_progress_without_the_body(client, auth_header):
    created = post(client, auth_header, referral_body()).get_json()
    mine = client.get(f"/v1/referrals/{created['id']}", headers=auth_header(*POLICE)).get_json()
    assert [(o["provider_id"], o["status"], o["offered_by"]) for o in mine["offers"]] == [
        ("demo-charity", "pending", "routing")
    ]
    assert mine["offers"][0]["respond_by"] > mine["offers"][0]["offered_at"]
    theirs = client.get(f"/v1/referrals/{created['id']}", headers=auth_header(*COORDINATOR)).get_json()
    assert theirs["offers"] == mine["offers"] and "subject" not in theirs and "narrative" not in theirs


def test_only_a_coordinator_may_offer_by_hand_and_only_what_can_be_offered(client, auth_header):
    escalated = post(client, auth_header, referral_body(location={"region": "wales"})).get_json()
    path = f"/v1/referrals/{escalated['id']}/offers"
    assert client.post(path, json={"provider_id": "demo-charity"}, headers=auth_header(*POLICE)).status_code == 403
    unknown = client.post(path, json={"provider_id": "nobody"}, headers=auth_header(*COORDINATOR))
    assert unknown.status_code == 422 and "provider_id" in unknown.get_json()["errors"]["json"]
    assert client.post(path, json={"provider": "x"}, headers=auth_header(*COORDINATOR)).status_code == 422
    made = client.post(path, json={"provider_id": "demo-charity"}, headers=auth_header(*COORDINATOR))
    assert made.status_code == 201 and made.get_json()["offered_by"] == "coordinator"
    again = client.post(path, json={"provider_id": "demo-charity"}, headers=auth_header(*COORDINATOR))
    assert again.status_code == 409  # an offer is already waiting for an answer
    assert client.get("/v1/escalations", headers=auth_header(*COORDINATOR)).get_json() == []
    missing = client.post("/v1/referrals/no-such-id/offers", json={"provider_id": "demo-charity"},
                          headers=auth_header(*COORDINATOR))  # fmt: skip
    assert missing.status_code == 404


def test_a_sex_specific_provider_declares_whom_it_serves(client, auth_header):
    headers = auth_header(*ADMIN)
    women = {**DEMO_PROVIDER, "sexes": ["female"]}
    assert client.put("/v1/providers/women-only", json=women, headers=headers).status_code == 201
    bad = client.put("/v1/providers/women-only", json={**DEMO_PROVIDER, "sexes": ["women"]}, headers=headers)
    assert bad.status_code == 422 and "sexes" in bad.get_json()["errors"]["json"]
    listed = {p["id"]: p for p in client.get("/v1/providers", headers=headers).get_json()}
    assert listed["women-only"]["sexes"] == ["female"] and listed["demo-charity"]["sexes"] is None
    created = post(client, auth_header, referral_body()).get_json()  # a woman: the women-only service ranks first
    detail = client.get(f"/v1/referrals/{created['id']}", headers=auth_header(*POLICE)).get_json()
    assert detail["offers"][0]["provider_id"] == "women-only"


def test_a_place_held_for_a_pending_offer_is_not_offered_again(client, auth_header):
    one_place = {**DEMO_PROVIDER, "capacity": 1}
    assert client.put("/v1/providers/demo-charity", json=one_place, headers=auth_header(*ADMIN)).status_code == 200
    first = post(client, auth_header, referral_body()).get_json()
    second = post(client, auth_header, referral_body()).get_json()
    assert (first["status"], second["status"]) == ("offered", "escalated")


@pytest.mark.parametrize("offered", [True, False], ids=["offered", "escalated"])
def test_a_new_referral_is_written_by_one_insert_with_the_status_routing_gave_it(client, auth_header, intake, offered):
    """Referral.move_to leaves a status where it already is: the row just inserted is not updated again
    (the performance flag that once did this by hand let an escalated referral keep `offered`, cdc573c)."""
    app, sessions = intake
    if not offered:  # nobody serves the region: escalated at once
        admin = auth_header("platform", "coordinator", "providers:admin")
        client.put("/v1/providers/demo-charity", json={"name": "D", "regions": ["wales"], "serves": ["adult"],
                                                       "capacity": 3}, headers=admin)  # fmt: skip
    with statements_sent(app.extensions["sessions"].kw["bind"]) as statements:
        response = post(client, auth_header, referral_body())
    assert response.status_code == 201
    assert response.get_json()["status"] == ("offered" if offered else "escalated")
    assert [s for s in statements if s.lstrip().upper().startswith("UPDATE REFERRALS")] == []
    with sessions() as session:
        assert session.get(Referral, response.get_json()["id"]).status == response.get_json()["status"]
