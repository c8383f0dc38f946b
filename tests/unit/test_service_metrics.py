"""Each service's figures and counters (issue 16): the readers /metrics calls at a scrape, on SQLite databases
made from the models, and the counters where it happens, over the fake unit of work or SQLite. No broker."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import create_engine, insert
from sqlalchemy.orm import sessionmaker
from test_advocacy_use_cases import Instance  # the fake charity its use-case tests run on

from services.advocacy.continuity.scheduler import ClockScheduler
from services.intake import models as intake
from services.intake.figures import OVERDUE_WINDOW, intake_figures
from services.notifications import models as notifications
from services.notifications.config import WebhookSettings
from services.notifications.dispatcher import WebhookDispatcher
from services.notifications.domain import UnsafeWebhookUrl
from services.notifications.figures import notifications_figures
from shared.clock import utcnow
from shared.outbox_metrics import outbox_figures

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
ACK = timedelta(hours=24)


def database(base) -> sessionmaker:
    engine = create_engine("sqlite://")
    base.metadata.create_all(engine)
    return sessionmaker(engine, expire_on_commit=False)


def rows(sessions: sessionmaker, table, *values: dict) -> None:
    with sessions.begin() as session:
        for row in values:  # one by one: an executemany takes its columns from the first row alone
            session.execute(insert(table).values(**row))


def scraped(figures) -> dict[tuple[str, tuple], float]:
    """What a scrape reads: {(name, label values): value}."""
    return {(m.name, tuple(s.labels.values())): s.value for m in figures() for s in m.samples}


def counted(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def outbox_row(event_id: str, age: timedelta, *, sent: bool = False) -> dict:
    created = NOW - age
    sent_at = created + timedelta(seconds=1) if sent else None
    return dict(id=event_id, type="referral.received", routing_key="referral.received", payload="{}",
                created_at=created, next_attempt_at=created, sent_at=sent_at, attempts=0)  # fmt: skip


# --- the outbox, in every service --------------------------------------------------------------------------


def test_an_empty_outbox_reads_nothing_pending_and_no_age():
    sessions = database(intake.Base)
    assert scraped(outbox_figures(sessions, intake.Outbox, "intake", now=lambda: NOW)) == {
        ("referrals_outbox_pending", ("intake",)): 0,
        ("referrals_outbox_oldest_pending_seconds", ("intake",)): 0,
    }


def test_the_outbox_counts_rows_the_broker_has_not_confirmed_and_the_age_of_the_oldest():
    sessions = database(notifications.Base)
    rows(
        sessions,
        notifications.Outbox.__table__,
        outbox_row("sent-long-ago", timedelta(hours=3), sent=True),
        outbox_row("waiting", timedelta(seconds=90)),
        outbox_row("just-written", timedelta(seconds=2)),
    )
    found = scraped(outbox_figures(sessions, notifications.Outbox, "notifications", now=lambda: NOW))
    assert found[("referrals_outbox_pending", ("notifications",))] == 2
    assert found[("referrals_outbox_oldest_pending_seconds", ("notifications",))] == 90


# --- intake: offers overdue, the coordinators' queue, erasures overdue ---------------------------------------


def referral(referral_id: str, status: str) -> dict:
    return dict(id=referral_id, org_id="met-police", external_reference=referral_id, request_hash="h",
                status=status, pathway="nrm", is_child=False, region="london", referred_at=NOW, received_at=NOW,
                updated_at=NOW, body=b"")  # fmt: skip


def offer(offer_id: str, status: str, respond_by: datetime | None) -> dict:
    return dict(id=offer_id, referral_id="r-offered", provider_id="charity-a", status=status, offered_at=NOW,
                respond_by=respond_by, offered_by="routing")  # fmt: skip


def test_offers_overdue_are_those_past_their_deadline_unanswered_lately_or_still_pending():
    sessions = database(intake.Base)
    rows(sessions, intake.Referral.__table__, referral("r-offered", "offered"))
    past, long_past = NOW - timedelta(minutes=5), NOW - OVERDUE_WINDOW - timedelta(minutes=5)
    rows(
        sessions,
        intake.Offer.__table__,
        offer("pending-overdue", "pending", past),  # the sweep has not expired it yet
        offer("pending-overdue-long", "pending", long_past),  # nor this one, for over an hour: still counted
        offer("expired-lately", "expired", past),  # the charity let it expire: the referral moved on
        offer("expired-long-ago", "expired", long_past),  # out of the window
        offer("pending-in-time", "pending", NOW + timedelta(hours=3)),
        offer("declined", "declined", past),
        offer("accepted", "accepted", past),
        offer("withdrawn", "withdrawn", past),
    )
    found = scraped(intake_figures(sessions, erasure_ack=ACK, now=lambda: NOW))
    assert found[("referrals_offers_overdue", ())] == 3


def test_escalations_open_are_the_entries_of_the_coordinators_queue():
    sessions = database(intake.Base)
    statuses = {"r-1": "escalated", "r-2": "offered", "r-3": "allocated", "r-4": "withdrawn", "r-5": "escalated"}
    rows(sessions, intake.Referral.__table__, *(referral(rid, status) for rid, status in statuses.items()))
    rows(
        sessions,
        intake.Escalation.__table__,
        dict(referral_id="r-1", reason="no_eligible_provider", raised_at=NOW),
        dict(referral_id="r-2", reason="immediate_danger", raised_at=NOW),  # alerted while its offer is out
        dict(referral_id="r-3", reason="all_declined", raised_at=NOW),  # allocated since
        dict(referral_id="r-4", reason="all_declined", raised_at=NOW),  # withdrawn since
        dict(referral_id="r-5", reason="all_declined", raised_at=NOW, resolved_at=NOW, resolved_by="coordinator"),
    )
    found = scraped(intake_figures(sessions, erasure_ack=ACK, now=lambda: NOW))
    assert found[("referrals_escalations_open", ())] == 2


def test_erasures_overdue_are_requests_a_recipient_left_unconfirmed_past_the_ack_time():
    sessions = database(intake.Base)
    rows(sessions, intake.Referral.__table__, referral("r-erased", "allocated"))
    asked = NOW - ACK - timedelta(minutes=1)
    erasure = dict(id="e-1", referral_id="r-erased", requested_at=asked, requested_by="met-police", reason="asked")
    rows(sessions, intake.Erasure.__table__, erasure | {"kept": []})
    rows(
        sessions,
        intake.ErasureRecipient.__table__,
        dict(erasure_id="e-1", recipient="provider.charity-a", kind="provider", requested_at=asked, kept=[]),
        dict(
            erasure_id="e-1",
            recipient="provider.charity-b",
            kind="provider",
            requested_at=asked,
            confirmed_at=NOW - timedelta(hours=2),
            kept=[],
        ),  # fmt: skip
        dict(
            erasure_id="e-1",
            recipient="notifications",
            kind="notifications",
            requested_at=NOW - timedelta(hours=1),
            kept=[],
        ),  # fmt: skip  (asked later, by a rectified list of recipients: not overdue yet)
    )
    found = scraped(intake_figures(sessions, erasure_ack=ACK, now=lambda: NOW))
    assert found[("referrals_erasures_overdue", ())] == 1
    assert (
        scraped(intake_figures(sessions, erasure_ack=ACK * 2, now=lambda: NOW))[("referrals_erasures_overdue", ())] == 0
    )


# --- notifications: the oldest webhook waiting, and every attempt counted by outcome -------------------------


def subscription(subscription_id: str, url: str) -> dict:
    return dict(id=subscription_id, org_id="met-police", url=url, events=["referral.received"],
                secret="whsec_" + "A" * 32, created_at=NOW)  # fmt: skip


def delivery(delivery_id: str, subscription_id: str, status: str, created: datetime) -> dict:
    return dict(id=delivery_id, webhook_id=f"msg_{delivery_id}", subscription_id=subscription_id,
                org_id="met-police", event_type="referral.received", event_id=f"ev-{delivery_id}",
                referral_id=f"r-{delivery_id}", payload="{}", status=status, attempts=0, next_attempt_at=created,
                created_at=created)  # fmt: skip


def test_the_oldest_webhook_pending_is_measured_from_its_event_and_finished_ones_do_not_count():
    sessions = database(notifications.Base)
    rows(sessions, notifications.Subscription.__table__, subscription("s-1", "https://agency.example/hook"))
    assert scraped(notifications_figures(sessions, now=lambda: NOW)) == {
        ("referrals_webhook_oldest_pending_seconds", ()): 0
    }
    rows(
        sessions,
        notifications.Delivery.__table__,
        delivery("delivered", "s-1", notifications.DELIVERED, NOW - timedelta(days=2)),
        delivery("given-up", "s-1", notifications.FAILED, NOW - timedelta(days=5)),
        delivery("retrying", "s-1", notifications.PENDING, NOW - timedelta(minutes=10)),
        delivery("new", "s-1", notifications.PENDING, NOW - timedelta(seconds=3)),
    )
    assert scraped(notifications_figures(sessions, now=lambda: NOW)) == {
        ("referrals_webhook_oldest_pending_seconds", ()): 600
    }


class Receiver:
    """Each agency's endpoint, by URL: the status code it answers."""

    def __init__(self, codes: dict[str, int]):
        self.codes = codes

    def post(self, url: str, **_kwargs):
        return _Answer(self.codes[url])


class _Answer:
    def __init__(self, status_code: int):
        self.status_code = status_code

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None


class Guard:
    """The SSRF guard, refusing one host."""

    def check(self, url: str) -> None:
        if "internal" in url:
            raise UnsafeWebhookUrl("resolves to a private address")


OUTCOMES = ("delivered", "retried", "failed", "refused")


def test_each_webhook_attempt_is_counted_once_as_delivered_retried_failed_or_refused():
    sessions = database(notifications.Base)
    urls = {"ok": "https://ok.example/hook", "down": "https://down.example/hook", "bad": "https://internal.example/h"}
    rows(sessions, notifications.Subscription.__table__, *(subscription(name, url) for name, url in urls.items()))
    due = utcnow() - timedelta(minutes=1)  # the dispatcher claims by the real clock
    rows(
        sessions,
        notifications.Delivery.__table__,
        *(delivery(f"d-{name}", name, notifications.PENDING, due) for name in urls),
    )
    receiver = Receiver({urls["ok"]: 204, urls["down"]: 503})
    settings = WebhookSettings(allow_private=False, retry_schedule=(0.0,))  # one retry, at once, then given up
    dispatcher = WebhookDispatcher(sessions, settings, guard=Guard(), http=lambda: receiver)
    before = {outcome: counted("referrals_webhook_deliveries_total", outcome=outcome) for outcome in OUTCOMES}

    # ok delivered; down and bad tried again at once (the schedule's 0 s), then given up at their second attempt
    assert dispatcher.dispatch_due() == 5
    assert dispatcher.dispatch_due() == 0

    after = {outcome: counted("referrals_webhook_deliveries_total", outcome=outcome) - before[outcome]
             for outcome in OUTCOMES}  # fmt: skip
    assert after == {"delivered": 1, "retried": 1, "refused": 1, "failed": 2}


# --- advocacy: breached clocks and missed transitions, each counted once ------------------------------------


def test_a_breached_clock_and_a_missed_transition_are_counted_once_by_kind_however_often_the_loop_passes():
    charity = Instance()
    case = charity.open_case()
    with charity.uow:
        charity.rules.transitions.plan(charity.uow, case, kind="relocation", planned_for=date(2026, 3, 4), actor="a",
                                       receiving_agency="leeds-city-council")  # fmt: skip
    scheduler = ClockScheduler(charity.uow, charity.provider_id, charity.clock)
    breached = counted("referrals_clocks_breached_total", clock="rg_decision")
    missed = counted("referrals_transitions_missed_total", transition="relocation")
    charity.clock.advance(days=30)  # past the RG decision's due date and the relocation's planned date
    for _ in range(3):
        scheduler.tick()
    assert counted("referrals_clocks_breached_total", clock="rg_decision") == breached + 1
    assert counted("referrals_transitions_missed_total", transition="relocation") == missed + 1


class FailingContacts:
    """The no-contact rule, failing after the clocks were claimed in the tick's unit of work."""

    def announce_overdue(self, *_args):
        raise RuntimeError("the tick fails before its unit of work commits")


def test_a_tick_that_rolls_back_counts_no_breach():
    charity = Instance()
    charity.open_case()
    scheduler = ClockScheduler(charity.uow, charity.provider_id, charity.clock, contacts=FailingContacts())
    breached = counted("referrals_clocks_breached_total", clock="rg_decision")
    charity.clock.advance(days=30)
    with pytest.raises(RuntimeError):
        scheduler.tick()
    assert charity.uow.rollbacks == 1
    assert counted("referrals_clocks_breached_total", clock="rg_decision") == breached


def test_the_loops_export_every_kind_and_outcome_at_zero_from_their_start_so_the_first_one_shows_as_an_increase():
    from services.advocacy.continuity import scheduler as scheduling
    from shared import metrics

    for counter in (metrics.CLOCKS_BREACHED, metrics.TRANSITIONS_MISSED, metrics.WEBHOOK_DELIVERIES):
        counter.clear()  # as in a process just started: no series yet
    scheduling._count_from_zero()
    assert REGISTRY.get_sample_value("referrals_clocks_breached_total", {"clock": "reconsideration_window"}) is not None
    assert REGISTRY.get_sample_value("referrals_transitions_missed_total", {"transition": "move_on"}) is not None
    assert (
        REGISTRY.get_sample_value("referrals_clocks_breached_total", {"clock": "recovery_period"}) is None
    )  # a minimum
    stopped = threading.Event()
    stopped.set()
    WebhookDispatcher(sessionmaker(), WebhookSettings()).run(stopped)  # stopped at once: no lane claims anything
    for outcome in ("delivered", "retried", "failed", "refused"):
        assert REGISTRY.get_sample_value("referrals_webhook_deliveries_total", {"outcome": outcome}) is not None
