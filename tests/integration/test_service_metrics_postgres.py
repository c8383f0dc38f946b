"""Each service's figures and counters as its API's `GET /metrics` answers them, on the real PostgreSQL (issue 16):
intake with an overdue offer, an open escalation, an overdue erasure and pending outbox rows; notifications with
a failing and a working webhook; advocacy with a breached clock, a missed transition and its outbox. No id of
any record appears in what is scraped."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, update

from services.advocacy.continuity.scheduler import ClockScheduler
from services.advocacy.continuity.wall_clock import FixedClock
from services.intake.models import ErasureRecipient, Offer, Outbox
from shared.clock import utcnow
from shared.testing import referral_body
from support.advocacy import PROVIDER, accepted_case, confirmed, deliver
from support.apps import notifications_instance
from support.receivers import WebhookReceiver

POLICE = ("met-police", "police", "referrals:write referrals:read")
ADMIN = ("platform", "coordinator", "providers:admin")
COORDINATOR = ("platform", "coordinator", "referrals:read")
WEBHOOKS = ("met-police", "police", "subscriptions:write")


class Scrape:
    """One `GET /metrics`, parsed: each sample's value by name and labels."""

    def __init__(self, client: FlaskClient):
        response = client.get("/metrics")
        assert response.status_code == 200, response.get_data(as_text=True)[:500]
        self.text = response.get_data(as_text=True)
        self.samples = {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(self.text)
            for sample in family.samples
        }

    def __call__(self, name: str, **labels: str) -> float | None:
        return self.samples.get((name, frozenset(labels.items())))

    def count(self, name: str, **labels: str) -> float:
        """A counter's value; 0 before its first increment (a labelled counter has no series until then)."""
        return self(name, **labels) or 0.0


def test_intake_reads_overdue_offers_open_escalations_overdue_erasures_and_its_outbox(intake, auth_header):
    app, sessions = intake
    client = app.test_client()
    entry = {"name": "Charity A", "regions": ["london"], "serves": ["adult"], "capacity": 5}
    assert client.put("/v1/providers/charity-a", json=entry, headers=auth_header(*ADMIN)).status_code == 201
    referrals = []
    for seed, region in ((1, "london"), (2, "wales"), (3, "london")):  # nobody serves wales: escalated
        body = referral_body(seed=seed, location={"region": region})
        created = client.post("/v1/referrals", json=body, headers=auth_header(*POLICE))
        assert created.status_code == 201, created.get_json()
        referrals.append(created.get_json())
    offered, escalated, erased = referrals
    assert (offered["status"], escalated["status"], erased["status"]) == ("offered", "escalated", "offered")
    fresh = Scrape(client)  # nothing overdue yet: charity-a has a day to answer, nobody was asked to erase
    assert fresh("referrals_offers_overdue") == fresh("referrals_erasures_overdue") == 0
    # The third is erased: its offer withdrawn, charity-a and notifications asked to erase their copies.
    asked = client.post(
        f"/v1/referrals/{erased['id']}/erasure", json={"reason": "Art. 17"}, headers=auth_header(*POLICE)
    )
    assert asked.status_code == 202, asked.get_json()
    with sessions.begin() as session:  # time passes: charity-a does not answer, nobody confirms the erasure
        session.execute(
            update(Offer).where(Offer.status == "pending").values(respond_by=utcnow() - timedelta(minutes=1))
        )
        session.execute(update(ErasureRecipient).values(requested_at=utcnow() - timedelta(hours=25)))
        oldest = session.scalar(select(Outbox.id).order_by(Outbox.created_at).limit(1))
        session.execute(update(Outbox).where(Outbox.id == oldest).values(created_at=utcnow() - timedelta(minutes=10)))
        pending = session.scalar(select(func.count()).select_from(Outbox).where(Outbox.sent_at.is_(None)))

    scraped = Scrape(client)
    assert scraped("referrals_offers_overdue") == 1
    assert scraped("referrals_escalations_open") == 1
    queue = client.get("/v1/escalations", headers=auth_header(*COORDINATOR)).get_json()
    assert [entry["referral_id"] for entry in queue] == [escalated["id"]]  # what the figure counts
    assert scraped("referrals_erasures_overdue") == 2
    assert scraped("referrals_outbox_pending", service="intake") == pending > 0  # no relay runs here
    assert 600 <= scraped("referrals_outbox_oldest_pending_seconds", service="intake") < 3600
    assert not any(referral["id"] in scraped.text for referral in referrals)


@pytest.fixture
def notifications(fresh_database, dev_keys):
    """notifications on a fresh database; webhooks to 127.0.0.1 allowed, a failed attempt tried again in an
    hour (so it stays pending)."""
    root, client = notifications_instance(fresh_database("notifications"), dev_keys, WEBHOOK_RETRY_SCHEDULE="3600")
    yield root, client
    root.engine.dispose()


def test_notifications_counts_each_webhook_attempt_and_reads_the_oldest_still_pending(notifications, auth_header):
    root, client = notifications
    headers = auth_header(*WEBHOOKS)
    before = Scrape(client)
    assert before("referrals_webhook_oldest_pending_seconds") == 0
    assert before("referrals_outbox_pending", service="notifications") == 0
    with WebhookReceiver() as down, WebhookReceiver() as up:
        down.status = 503
        for receiver in (down, up):
            body = {"url": f"{receiver.url}/hooks", "events": ["referral.received"]}
            created = client.post("/v1/subscriptions", json=body, headers=headers)
            assert created.status_code == 201, created.get_json()
            assert client.post(f"/v1/subscriptions/{created.get_json()['id']}/ping", headers=headers).status_code == 202
        assert root.dispatcher.dispatch_due() == 2
    after = Scrape(client)
    for outcome, attempts in (("delivered", 1), ("retried", 1), ("failed", 0), ("refused", 0)):
        counted = after.count("referrals_webhook_deliveries_total", outcome=outcome)
        assert counted - before.count("referrals_webhook_deliveries_total", outcome=outcome) == attempts, outcome
    assert after("referrals_webhook_oldest_pending_seconds") > 0  # the ping to the agency that is down


def test_advocacy_counts_a_breached_clock_and_a_missed_transition_once_and_reads_its_outbox(advocacy):
    case = accepted_case(advocacy)
    deliver(advocacy.advocacy, confirmed(case))  # the case opens: its RG decision clock starts
    plan = {"kind": "relocation", "planned_for": (utcnow() + timedelta(days=3)).date().isoformat(),
            "receiving_agency": "leeds-city-council"}  # fmt: skip
    planned = advocacy.client.post(f"/v1/cases/{case['id']}/transitions", json=plan, headers=advocacy.headers)
    assert planned.status_code == 201, planned.get_json()
    before = Scrape(advocacy.client)
    assert before("referrals_outbox_pending", service="advocacy") > 0  # offer.accepted, case.opened, ...
    later = FixedClock(utcnow() + timedelta(days=30))  # past the RG decision's due date and the relocation's
    scheduler = ClockScheduler(advocacy.unit_of_work, PROVIDER, later)
    for _ in range(3):
        scheduler.tick()
    after = Scrape(advocacy.client)
    breached = ("referrals_clocks_breached_total", {"clock": "rg_decision"})
    missed = ("referrals_transitions_missed_total", {"transition": "relocation"})
    for name, labels in (breached, missed):
        assert after.count(name, **labels) - before.count(name, **labels) == 1, name
    assert case["id"] not in after.text and case["referral_id"] not in after.text
