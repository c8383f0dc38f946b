"""Encryption at rest (issue 15 part 1) on PostgreSQL and SQLite: a canary in every field of a referral is in no
raw column and, on SQLite, in no byte of the database or WAL file; the API still reads it; a KEK rotation keeps
it readable under the new KEK alone; an erasure deletes the data key, and what was sealed under it stays shut."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, text

from contracts.events import provider_recipient
from services.keys_cli import rotate_service
from shared import crypto
from shared.config import Settings
from shared.testing import referral_body
from support.advocacy import PROVIDER, SCOPES, FakeIntake, Instance, accepted_case, confirmed, deliver
from support.apps import dispose, service_app
from support.events import arriving, payload

POLICE = ("met-police", "police", "referrals:write referrals:read")
CANARY = "Canarykeep Zyxw"
BODY = "SELECT body FROM referrals WHERE id = :id"
KEY = "SELECT kek_id, wrapped FROM data_keys WHERE referral_id = :id"


@pytest.fixture(params=["postgresql", "sqlite"])
def database(request, fresh_database, tmp_path):
    if request.param == "postgresql":
        return fresh_database("intake")
    return f"sqlite:///{tmp_path}/intake.db"


def _app(database: str, dev_keys, kek: str, previous: str = ""):
    return service_app("intake", database, dev_keys, DATA_KEK_FILE=kek, DATA_KEK_PREVIOUS_FILES=previous)


def _raw(database: str, sql: str, **params: str) -> list:
    engine = create_engine(database)
    try:
        with engine.connect() as connection:
            return list(connection.execute(text(sql), params))
    finally:
        engine.dispose()


def _submit(client, auth_header) -> str:
    body = referral_body(narrative=f"{CANARY} narrative")
    body["subject"] |= {"given_name": CANARY, "aliases": [f"{CANARY} alias"], "date_of_birth": "1997-03-04"}
    body["referrer"] |= {"name": f"{CANARY} officer", "phone": "+44 20 7946 0999"}
    body["risk"]["notes"] = f"{CANARY} risk"
    created = client.post("/v1/referrals", json=body, headers={**auth_header(*POLICE), "Idempotency-Key": "k-1"})
    assert created.status_code == 201, created.get_json()
    return created.get_json()["id"]


def test_personal_fields_are_ciphertext_rotation_keeps_them_and_erasure_shreds(
    database, dev_keys, auth_header, tmp_path
):
    old, new = tmp_path / "old.b64", tmp_path / "new.b64"
    crypto.ensure_kek_file(old), crypto.ensure_kek_file(new)
    app = _app(database, dev_keys, str(old))
    client = app.test_client()
    referral_id = _submit(client, auth_header)
    read = client.get(f"/v1/referrals/{referral_id}", headers=auth_header(*POLICE))
    assert read.status_code == 200 and read.get_json()["subject"]["given_name"] == CANARY
    dispose(app)

    [(sealed,)] = _raw(database, BODY, id=referral_id)
    assert bytes(sealed).startswith(b"v1") and CANARY.encode() not in bytes(sealed)
    for table in ("referrals", "idempotency_keys", "outbox", "disclosures", "data_keys"):
        for row in _raw(database, f"SELECT * FROM {table}"):  # noqa: S608 - our own table names
            assert CANARY not in repr(row) and "1997-03-04" not in repr(row), table
    if database.startswith("sqlite"):
        for path in tmp_path.glob("intake.db*"):  # the database and its WAL file
            assert CANARY.encode() not in path.read_bytes(), path.name
    [(kek_id, wrapped)] = _raw(database, KEY, id=referral_id)
    assert kek_id == crypto.FileKek.from_file(old).id

    env = {"INTAKE_DATABASE_URL": database, "DATA_KEK_FILE": str(new), "DATA_KEK_PREVIOUS_FILES": str(old)}
    assert rotate_service("intake", Settings.from_env("intake", env=env)) == 2  # the referral's, the responses'
    assert rotate_service("intake", Settings.from_env("intake", env=env)) == 0  # nothing left to re-wrap
    assert {kek_id for (kek_id,) in _raw(database, "SELECT kek_id FROM data_keys")} == {
        crypto.FileKek.from_file(new).id
    }
    [(after,)] = _raw(database, BODY, id=referral_id)
    assert bytes(after) == bytes(sealed)  # re-wrapped, not re-encrypted

    behind = _app(database, dev_keys, str(old))  # a server not yet given the new KEK: a 503 that says so
    refused = behind.test_client().get(f"/v1/referrals/{referral_id}", headers=auth_header(*POLICE))
    assert refused.status_code == 503 and "key" in refused.get_json()["message"], refused.get_json()
    assert CANARY not in refused.get_data(as_text=True)
    dispose(behind)

    app = _app(database, dev_keys, str(new))  # the old KEK retired
    client = app.test_client()
    read = client.get(f"/v1/referrals/{referral_id}", headers=auth_header(*POLICE))
    assert read.status_code == 200 and read.get_json()["narrative"] == f"{CANARY} narrative"
    erasure = f"/v1/referrals/{referral_id}/erasure"
    erased = client.post(erasure, json={"reason": "Art. 17"}, headers=auth_header(*POLICE))
    assert erased.status_code == 202, erased.get_json()
    assert client.get(f"/v1/referrals/{referral_id}", headers=auth_header(*POLICE)).status_code == 410
    dispose(app)
    assert _raw(database, KEY, id=referral_id) == []  # shredded: a backup's ciphertext has no key left


class CanaryIntake(FakeIntake):
    """intake's disclosed referral, with the canary in its names, narrative and date of birth."""

    def fetch_referral(self, referral_id: str) -> dict:
        subject = {"given_name": CANARY, "aliases": [f"{CANARY} alias"], "date_of_birth": "1997-03-04"}
        return {"id": referral_id, "status": "allocated", "subject": subject, "narrative": f"{CANARY} narrative"}


@pytest.fixture(params=["postgresql", "sqlite"])
def charity(request, fresh_database, tmp_path, dev_keys, broker_url, auth_header):
    url = fresh_database("advocacy") if request.param == "postgresql" else f"sqlite:///{tmp_path}/advocacy.db"
    app = service_app("advocacy", url, dev_keys, PROVIDER_ID=PROVIDER, AMQP_URL=broker_url)
    yield url, Instance(app.test_client(), app.extensions["advocacy"], auth_header(PROVIDER, "provider", SCOPES))
    dispose(app)


def test_a_charity_keeps_the_case_notes_contacts_and_risks_sealed_and_erasure_shreds_them(charity, tmp_path):
    url, advocacy = charity
    case = accepted_case(advocacy)
    deliver(advocacy, confirmed(case), intake=CanaryIntake())
    base, headers = f"/v1/cases/{case['id']}", {**advocacy.headers, "Idempotency-Key": "k-2"}
    assert advocacy.client.post(f"{base}/notes", json={"text": f"{CANARY} note"}, headers=headers).status_code == 201
    at = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    contact = {"at": at, "method": "phone", "outcome": "reached", "note": f"{CANARY} contact"}
    contact["interpreter_used"] = False
    assert advocacy.client.post(f"{base}/contacts", json=contact, headers=advocacy.headers).status_code == 201
    risk = {"kind": "re_trafficking", "level": "low", "review_on": "2099-01-01", "note": f"{CANARY} risk"}
    assert advocacy.client.post(f"{base}/risks", json=risk, headers=advocacy.headers).status_code == 201
    read = advocacy.client.get(base, headers=advocacy.headers).get_json()
    assert read["referral"]["subject"]["given_name"] == CANARY  # opened for its reader
    notes = advocacy.client.get(f"{base}/notes", headers=advocacy.headers).get_json()
    assert [n["text"] for n in notes] == [f"{CANARY} note"]
    with advocacy.unit_of_work() as uow:  # the page's search, through the blind index
        assert advocacy.continuity.casework.index.find(uow, CANARY) == [case["id"]]

    for table in ("cases", "case_notes", "case_contacts", "risk_flags", "offers", "outbox", "idempotency_keys"):
        for row in _raw(url, f"SELECT * FROM {table}"):  # noqa: S608 - our own table names
            assert CANARY not in repr(row) and "1997-03-04" not in repr(row), table
    if url.startswith("sqlite"):
        for path in tmp_path.glob("advocacy.db*"):
            assert CANARY.encode() not in path.read_bytes(), path.name
    assert len(_raw(url, "SELECT * FROM data_keys")) == 2  # the referral's, for all its rows, and the responses'

    request = {
        "referral_id": case["referral_id"],
        "erasure_id": str(uuid.uuid4()),
        "requested_at": "2026-01-06T09:00:00Z",
    }
    deliver(
        advocacy, arriving(payload("referral.erasure_requested", recipient=provider_recipient(PROVIDER), **request))
    )
    assert _raw(url, KEY, id=case["referral_id"]) == []
    assert advocacy.client.get(base, headers=advocacy.headers).status_code < 500
    assert advocacy.client.get(f"{base}/notes", headers=advocacy.headers).status_code < 500
