"""Offer deadlines on the real broker and database: with two intake workers sweeping at once, a burst of
200 offers expiring together expires each offer exactly once and moves each referral on once."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest
from sqlalchemy import select, text, update

from services.intake.models import Offer, Outbox
from shared.testing import referral_body
from support.amqp import declare_tap
from support.apps import UNLIMITED, dispose, service_app
from support.processes import Platform

POLICE = ("met-police", "police", "referrals:write referrals:read")
ADMIN = ("platform", "coordinator", "providers:admin")
BURST = 200


@pytest.fixture
def intake(fresh_database, dev_keys):
    """intake's app without rate limits: the burst is 200 referrals from one force, past its 120 a minute."""
    app = service_app("intake", fresh_database("intake"), dev_keys, **UNLIMITED)
    yield app, app.extensions["intake"].sessions
    dispose(app)


def test_a_burst_of_offers_expiring_at_once_expires_each_exactly_once_with_two_workers(
    intake, auth_header, amqp_url, tmp_path
):
    app, sessions = intake
    client = app.test_client()
    for pid, capacity in (("provider-a", 900), ("provider-b", 800)):
        body = {"name": pid, "regions": ["london"], "serves": ["adult"], "capacity": capacity}
        assert client.put(f"/v1/providers/{pid}", json=body, headers=auth_header(*ADMIN)).status_code == 201
    headers = auth_header(*POLICE)
    for i in range(BURST):
        assert client.post("/v1/referrals", json=referral_body(seed=i), headers=headers).status_code == 201
    declare_tap(amqp_url, "deadline.tap", "#")  # every event routable, as the charities' queues would make it
    with sessions.begin() as session:
        session.execute(update(Offer).values(respond_by=text("now() - interval '1 second'")))

    database_url = sessions.kw["bind"].url.render_as_string(hide_password=False)
    env = {"INTAKE_DATABASE_URL": database_url, "AMQP_URL": amqp_url, "OFFER_SWEEP_SECONDS": "0.2"}
    workers = Platform(tmp_path, env)
    try:
        workers.start_worker("intake", {}, name="intake-worker-1")
        workers.start_worker("intake", {}, name="intake-worker-2")
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and _expired(sessions) < BURST:
            workers.check_alive()
            time.sleep(0.2)
        time.sleep(1.0)  # a late duplicate, if there were one, would show up now
    finally:
        workers.stop()

    with sessions() as session:
        offers = session.scalars(select(Offer)).all()
        events = [
            json.loads(row.payload) for row in session.scalars(select(Outbox).where(Outbox.type == "offer.expired"))
        ]
    by_referral: dict[str, list[Offer]] = {}
    for offer in offers:
        by_referral.setdefault(offer.referral_id, []).append(offer)
    assert len(by_referral) == BURST
    for pair in by_referral.values():  # each referral: its first offer expired once, then one new offer elsewhere
        assert sorted(o.status for o in pair) == ["expired", "pending"]
        assert len({o.provider_id for o in pair}) == 2
    expired_ids = Counter(event["data"]["offer_id"] for event in events)
    assert len(expired_ids) == BURST and set(expired_ids.values()) == {1}
    logs = workers.logs()
    assert "Traceback" not in logs


def _expired(sessions) -> int:
    with sessions() as session:
        return len(session.scalars(select(Offer.id).where(Offer.status == "expired")).all())
