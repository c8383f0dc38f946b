"""An unlinkable Duty to Notify on the real PostgreSQL (issue 15 part 3): the POST of an anonymous referral
echoes its external reference, but no column, outbox row or later read holds it; a retry answers 200 with the
same id; and migration 0008 converts the rows stored before it (the body's hash keyed, the reference of an
anonymous referral replaced by its keyed hash)."""

from __future__ import annotations

import hashlib
import json

from alembic import command
from sqlalchemy import column, create_engine, text
from sqlalchemy import table as sa_table

from services.intake.referral_keys import DEV_KEY, ReferralKeys
from services.migrate import alembic_config
from shared.testing import referral_body

POLICE = ("met-police", "police", "referrals:write referrals:read")
NEITHER = {"nrm_referral": False, "advocacy": False, "data_sharing": False}


def test_an_anonymous_referral_echoes_its_reference_once_and_keeps_only_its_keyed_hash(intake, auth_header):
    app, sessions = intake
    client, headers = app.test_client(), auth_header(*POLICE)
    body = referral_body(consent=NEITHER)
    reference = body["external_reference"]

    response = client.post("/v1/referrals", json=body, headers=headers)
    assert response.status_code == 201
    created = response.get_json()
    assert (created["pathway"], created["external_reference"]) == ("duty_to_notify", reference)
    retry = client.post("/v1/referrals", json=body, headers=headers)
    assert (retry.status_code, retry.get_json()["id"]) == (200, created["id"])
    reused = client.post("/v1/referrals", json=body | {"narrative": "Another synthetic narrative."}, headers=headers)
    assert reused.status_code == 409 and reference not in reused.get_data(as_text=True)

    read = client.get(f"/v1/referrals/{created['id']}", headers=headers).get_json()
    assert read["external_reference"] is None
    assert client.get("/v1/referrals", headers=headers).get_json()[0]["external_reference"] is None
    with sessions() as session:
        row = session.execute(text("SELECT * FROM referrals")).mappings().one()
        payloads = session.execute(text("SELECT type, payload FROM outbox")).all()
    assert row["reference_keyed"] and row["external_reference"] == ReferralKeys(DEV_KEY).reference(
        "met-police", reference
    )
    plain = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert row["request_hash"] not in (plain, hashlib.sha256(json.dumps(body).encode()).hexdigest())
    assert reference not in json.dumps({k: str(v) for k, v in row.items()})
    assert [t for t, _ in payloads] == ["referral.received"]
    for _, payload in payloads:
        assert reference not in payload and json.loads(payload)["data"]["external_reference"] is None


def test_migration_0008_keys_the_hashes_of_rows_stored_before_it(fresh_database):
    url = fresh_database("intake")
    config = alembic_config("intake", url)
    command.upgrade(config, "0007_rectification")
    at, plain = "2026-11-05T10:00:00+00:00", hashlib.sha256(b"a body").hexdigest()
    common = {"org_id": "met-police", "request_hash": plain, "status": "recorded", "is_child": False,
              "region": "london", "referred_at": at, "received_at": at, "updated_at": at}  # fmt: skip
    rows = [
        {"id": "dtn", "external_reference": "MET-DTN-1", "pathway": "duty_to_notify", "body": {"subject": {}}},
        {"id": "nrm", "external_reference": "MET-NRM-1", "pathway": "nrm", "body": {"referrer": {"role": "dc"}}},
    ]
    engine = create_engine(url)
    with engine.begin() as db:
        for row in rows:
            values = common | row | {"body": json.dumps(row["body"])}
            db.execute(sa_table("referrals", *(column(k) for k in values)).insert().values(**values))
    command.upgrade(config, "0008_keyed_hashes")
    with engine.begin() as db:
        found = {r["id"]: r for r in db.execute(text("SELECT * FROM referrals")).mappings()}
    keys = ReferralKeys(DEV_KEY)
    assert found["dtn"]["external_reference"] == keys.reference("met-police", "MET-DTN-1")
    assert found["dtn"]["reference_keyed"] and not found["nrm"]["reference_keyed"]
    assert found["nrm"]["external_reference"] == "MET-NRM-1"
    assert {r["request_hash"] for r in found.values()} == {keys.request_hash(plain)}
    command.downgrade(config, "0007_rectification")
    engine.dispose()
