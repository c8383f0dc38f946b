"""Rectification across the services on the real broker (issue 14 Done when): the referrer corrects the
subject's name with a JSON Merge Patch, intake stages referral.rectified to the charity holding the case, the
charity fetches the referral again (a disclosure intake records with purpose rectification) and its copy and
search match."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from services.advocacy.models import Outbox as AdvocacyOutbox
from services.intake.models import Disclosure, Rectification
from services.intake.models import Outbox as IntakeOutbox
from services.intake.worker import QUEUE
from shared.inbox import EventHandlers
from shared.testing import referral_body
from support.advocacy import PROVIDER, add_advocate, deliver
from support.flows import IntakeOverHttp, relayed

pytestmark = pytest.mark.integration

POLICE = ("met-police", "police", "referrals:write referrals:read")
ADMIN = ("platform", "coordinator", "providers:admin")
MERGE_PATCH = "application/merge-patch+json"


def test_a_rectified_subject_name_reaches_the_charitys_copy_and_the_disclosure_is_recorded(
    intake, advocacy, auth_header, amqp_url
):
    app, sessions = intake
    client = app.test_client()
    entry = {"name": "Charity A", "regions": ["london"], "serves": ["adult", "child"], "capacity": 3}
    assert client.put(f"/v1/providers/{PROVIDER}", json=entry, headers=auth_header(*ADMIN)).status_code == 201
    add_advocate(advocacy)
    use = app.extensions["intake"].use_cases
    to_intake = EventHandlers(QUEUE, use.units, use.handlers, trusted={"guest"})
    referral = client.post("/v1/referrals", json=referral_body(seed=31), headers=auth_header(*POLICE)).get_json()
    first = relayed(amqp_url, sessions, IntakeOutbox, "referral.received", f"referral.offered.{PROVIDER}")
    deliver(advocacy, first[f"referral.offered.{PROVIDER}"], auto_accept=True)
    to_intake(relayed(amqp_url, advocacy.sessions, AdvocacyOutbox, "offer.accepted")["offer.accepted"])
    allocated = relayed(amqp_url, sessions, IntakeOutbox, "referral.allocated", f"allocation.confirmed.{PROVIDER}")
    reader = IntakeOverHttp(client, auth_header(PROVIDER, "provider", "referrals:read"))
    deliver(advocacy, allocated[f"allocation.confirmed.{PROVIDER}"], intake=reader)
    [case] = advocacy.client.get("/v1/cases", headers=advocacy.headers).get_json()

    refused = client.patch(f"/v1/referrals/{referral['id']}", json={"narrative": "x"}, headers=auth_header(*POLICE))
    assert refused.status_code == 422 and "narrative" in refused.get_json()["errors"]["json"]
    patch = {"subject": {"given_name": "Rectified-Synthetic"}}
    response = client.patch(
        f"/v1/referrals/{referral['id']}",
        data=json.dumps(patch),
        content_type=MERGE_PATCH,
        headers=auth_header(*POLICE),
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["subject"]["given_name"] == "Rectified-Synthetic"

    told = relayed(amqp_url, sessions, IntakeOutbox, f"referral.rectified.provider.{PROVIDER}")
    deliver(advocacy, told[f"referral.rectified.provider.{PROVIDER}"], intake=reader)
    held = advocacy.client.get(f"/v1/cases/{case['id']}", headers=advocacy.headers).get_json()
    assert held["referral"]["subject"]["given_name"] == "Rectified-Synthetic"
    with sessions() as session:
        purposes = session.scalars(select(Disclosure.purpose).where(Disclosure.referral_id == referral["id"])).all()
        (row,) = session.scalars(select(Rectification).where(Rectification.referral_id == referral["id"])).all()
    assert "rectification" in purposes and row.sections == ["subject"] and row.org_id == "met-police"
