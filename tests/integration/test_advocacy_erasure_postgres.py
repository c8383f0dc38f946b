"""Erasure at a charity on its real database (issue 14 item 2): one delivery of `referral.erasure_requested`
erases the case's copy, its notes and contacts, the stored idempotent responses and outbox rows about it, and
stages `erasure.completed` in the same transaction."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from contracts import events
from services.advocacy.models import Case, CaseContact, CaseNote, IdempotencyKey, Offer, Outbox
from support.advocacy import accepted_case, confirmed, deliver, outbox, staged
from support.events import arriving, payload

pytestmark = pytest.mark.integration
NOTE = "Synthetic note: the erasure canary Quorvell."


def test_an_erasure_request_erases_the_case_and_answers_in_one_transaction(advocacy):
    case = accepted_case(advocacy)
    deliver(advocacy, confirmed(case))
    headers = {**advocacy.headers, "Idempotency-Key": str(uuid.uuid4())}
    base = f"/v1/cases/{case['id']}"
    assert advocacy.client.post(f"{base}/notes", json={"text": NOTE}, headers=headers).status_code == 201
    contact = {
        "at": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
        "method": "phone",
        "outcome": "reached",
        "note": NOTE,
        "interpreter_used": False,
    }
    assert advocacy.client.post(f"{base}/contacts", json=contact, headers=advocacy.headers).status_code == 201
    request = {
        "referral_id": case["referral_id"],
        "erasure_id": str(uuid.uuid4()),
        "requested_at": "2026-01-06T09:00:00Z",
    }
    erasure = payload("referral.erasure_requested", recipient=events.provider_recipient("charity-a"), **request)

    deliver(advocacy, arriving(erasure))

    with advocacy.sessions.begin() as session:
        row = session.get(Case, case["id"])
        assert (row.status, row.referral) == ("closed", None)
        assert session.get(Offer, case["offer_id"]).summary == {}
        for model in (CaseNote, CaseContact):
            assert not session.scalars(select(model).where(model.case_id == case["id"])).all()
        assert not [r for r in session.scalars(select(IdempotencyKey)) if r.body and case["id"].encode() in r.body]
        about = [r.type for r in session.scalars(select(Outbox)) if case["referral_id"] in r.payload]
    assert about == ["erasure.completed"]  # case.opened and the rest forgotten; no case.closed
    [done] = staged(advocacy, "erasure.completed")
    assert (done["erasure_id"], done["provider_id"]) == (request["erasure_id"], "charity-a")
    assert {"record": "case_dates", "because": "statistics"} in done["kept"]
    assert NOTE not in json.dumps(outbox(advocacy, "erasure.completed"))
