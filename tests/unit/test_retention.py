"""Retention as versioned policy (issue 14 item 4): the table (contracts/retention.csv), its rules, and what
is due with time passed in. The step's SQL runs on an in-memory SQLite database (no file, no network); the
exactly-once claim across two workers is tests/integration/test_retention_racing.py."""

from __future__ import annotations

import functools
import os
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.pool import StaticPool

from services.advocacy import retention as advocacy_retention
from services.intake import retention as intake_retention
from services.intake.models import Base, DataKey, DutyToNotifyRecord, Inbox, Outbox, Referral
from services.notifications import retention as notifications_retention
from shared import idempotency, retention
from shared.crypto import FileKek, KekRing
from shared.db import make_session_factory
from shared.messaging.relay import store
from shared.retention import RetentionError, load_table, parse_table
from shared.sealed import enable as enable_sealing

HEADER = "kind,service,period,unit,valid_from,action,note\n"
NOW = datetime(2031, 6, 15, 12, 0, tzinfo=UTC)


def test_the_shipped_table_gives_every_kind_a_period_an_action_and_its_basis():
    table = load_table()
    assert {row.kind for row in table.rows} == set(retention.KINDS)
    for row in table.rows:
        assert row.action in retention.ACTIONS and row.note
        assert "statute" in row.note.lower() or "Act" in row.note or "Recital" in row.note
    assert table.rule("closed_case", "advocacy", on=NOW.date()).version == "closed_case@advocacy:2015-11-01"
    assert table.rule("referral_never_allocated", "intake", on=NOW.date()).period_text == "12 months"


def test_every_services_stores_have_a_rule_and_the_kit_periods_agree_with_the_kit():
    table = load_table()
    # Building the step checks each target has a rule; no I/O until it runs.
    intake_retention.retention(make_session_factory(create_engine("sqlite://")), table)
    advocacy_retention.retention(lambda: None, "p-1", table)  # type: ignore[arg-type, return-value]
    notifications_retention.retention(lambda: None, table)  # type: ignore[arg-type, return-value]
    for service in retention.SERVICES:  # the relay's own prune and the idempotency TTL say the same
        assert timedelta(days=table.rule("outbox", service, on=NOW.date()).period) == store.RETENTION
        assert timedelta(days=table.rule("idempotent_responses", service, on=NOW.date()).period) == idempotency.TTL


def test_the_rule_in_force_is_the_newest_valid_on_the_day():
    table = retention.RetentionTable(
        parse_table(
            HEADER
            + "\n".join(
                f"{kind},intake,{period},days,{since},delete,practice"
                for kind in retention.KINDS
                for period, since in ((30, "2015-11-01"), (10, "2031-01-01"))
            )
        )
    )
    assert table.rule("inbox", "intake", on=date(2030, 12, 31)).period == 30
    rule = table.rule("inbox", "intake", on=date(2031, 1, 1))
    assert (rule.period, rule.version) == (10, "inbox@intake:2031-01-01")
    with pytest.raises(RetentionError, match="no inbox rule for intake in force on 2015-10-31"):
        table.rule("inbox", "intake", on=date(2015, 10, 31))


@pytest.mark.parametrize(
    ("period", "unit", "now", "cutoff"),
    [
        (30, "days", datetime(2031, 3, 1, tzinfo=UTC), datetime(2031, 1, 30, tzinfo=UTC)),
        (12, "months", datetime(2031, 3, 31, 9, tzinfo=UTC), datetime(2030, 3, 31, 9, tzinfo=UTC)),
        (1, "months", datetime(2031, 3, 31, tzinfo=UTC), datetime(2031, 2, 28, tzinfo=UTC)),
        (6, "years", datetime(2032, 2, 29, tzinfo=UTC), datetime(2026, 2, 28, tzinfo=UTC)),
    ],
)
def test_a_period_in_days_months_or_years_ends_on_the_calendar_day(period, unit, now, cutoff):
    rule = retention.RetentionRule("inbox", "intake", period, unit, date(2015, 11, 1), "delete", "practice")
    assert rule.cutoff(now) == cutoff


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("nonsense,intake,1,days,2015-11-01,delete,x", "unknown record kind 'nonsense'"),
        ("inbox,billing,1,days,2015-11-01,delete,x", "unknown service 'billing'"),
        ("inbox,intake,1,weeks,2015-11-01,delete,x", "unit must be one of days, months, years"),
        ("inbox,intake,1,days,2015-11-01,shred,x", "action must be one of erase, anonymise, delete"),
        ("inbox,intake,0,days,2015-11-01,delete,x", "period must be positive"),
        ("inbox,intake,1,days,soon,delete,x", "valid_from a YYYY-MM-DD date"),
        ("inbox,intake,1,days,2015-11-01,delete,", "the note must give the legal basis"),
    ],
)
def test_a_malformed_row_is_refused_with_its_line(line, error):
    with pytest.raises(RetentionError, match=f"line 2: .*{error}"):
        parse_table(HEADER + line)


def test_a_table_without_a_kind_is_refused():
    with pytest.raises(RetentionError, match="no row for .*access_log"):
        retention.RetentionTable(parse_table(HEADER + "inbox,intake,1,days,2015-11-01,delete,practice"))


@pytest.fixture
def intake_db():
    engine = create_engine("sqlite://", poolclass=StaticPool)
    Base.metadata.create_all(engine)
    yield enable_sealing(make_session_factory(engine), DataKey, KekRing(FileKek(os.urandom(32))))
    engine.dispose()


def _dtn(month: str) -> DutyToNotifyRecord:
    fields = dict(rule="mlsa2015_s52", notifying_authority_kind="police", notified_month=month, region="london")
    fields |= dict(local_authority=None, nationality="unknown", sex="female", exploitation_types=["labour"])
    return DutyToNotifyRecord.of(fields | dict(exploitation_locations=["uk"], exploited_as_child=False))


def _outbox(sent_at: datetime | None) -> Outbox:
    return Outbox(id=str(uuid.uuid4()), type="referral.received", routing_key="k", payload="{}", sent_at=sent_at)


def _referral(n: int, status: str, updated_at: datetime, provider_id: str | None = None) -> Referral:
    return Referral(id=f"r-{n}", org_id="met-police", external_reference=f"REF-{n}", request_hash="h", status=status,
                    pathway="nrm", is_child=False, region="london", referred_at=updated_at, received_at=updated_at,
                    updated_at=updated_at, body={"subject": {"name": "Synthetic Person"}}, provider_id=provider_id,
                    accepted_at=updated_at if provider_id else None)  # fmt: skip


def test_what_is_due_at_intake_is_what_the_table_says_and_a_run_does_it_once(intake_db):
    with intake_db.begin() as session:
        # Never allocated: erased 12 months after its last change; an allocated one is the charity's to keep.
        old, recent = NOW - timedelta(days=370), NOW - timedelta(days=300)
        session.add_all([_referral(1, "withdrawn", old), _referral(2, "withdrawn", recent)])
        session.add_all([_referral(3, "escalated", old), _referral(4, "allocated", old, "provider-a")])
        # DtN statistics: six years, counted from the month (2025-05 is past at 2031-06-15, 2025-06 is not).
        session.add_all([_dtn("2024-01"), _dtn("2025-05"), _dtn("2025-06")])
        session.add_all(
            [
                Inbox(consumer="intake", message_id="old", received_at=NOW - timedelta(days=31)),
                Inbox(consumer="intake", message_id="new", received_at=NOW - timedelta(days=29)),
            ]
        )
        # Sent rows past seven days go; an unsent row stays, however old.
        session.add_all([_outbox(NOW - timedelta(days=8)), _outbox(NOW - timedelta(days=6)), _outbox(None)])
    step = intake_retention.retention(intake_db)

    due = {o.kind: o for o in step.due(NOW)}
    assert {kind: o.count for kind, o in due.items() if o.rule} == {
        "dtn_statistics": 2,
        "referral_never_allocated": 2,
        "inbox": 1,
        "outbox": 1,
        "idempotent_responses": 0,
        "access_log": 0,
    }
    assert due["dtn_statistics"].rule.version == "dtn_statistics@intake:2015-11-01"  # type: ignore[union-attr]
    assert due["access_log"].rule.version == "access_log@intake:2015-11-01"  # type: ignore[union-attr]
    assert "due 2 (delete)" in due["dtn_statistics"].line(done=False)

    done = {o.kind: o.count for o in step.run(NOW)}
    assert (done["dtn_statistics"], done["referral_never_allocated"], done["inbox"], done["outbox"]) == (2, 2, 1, 1)
    assert all(o.count == 0 for o in step.run(NOW))  # once
    with intake_db() as session:
        assert session.scalars(select(DutyToNotifyRecord.notified_month)).all() == ["2025-06"]
        assert session.scalars(select(Inbox.message_id)).all() == ["new"]
        assert session.scalar(select(func.count()).select_from(Outbox)) == 2
        erased = {r.id: r for r in session.scalars(select(Referral))}
        assert erased["r-1"].body == {} and erased["r-1"].erased_at == NOW and erased["r-3"].body == {}
        assert erased["r-2"].body and erased["r-4"].body and erased["r-4"].erased_at is None
    # Time passed in: a year later the rest of the DtN records are due too.
    assert {o.kind: o.count for o in step.due(NOW + timedelta(days=366))}["dtn_statistics"] == 1


def test_a_database_without_the_stores_is_refused_with_the_fix():
    step = intake_retention.retention(make_session_factory(create_engine("sqlite://")))
    with pytest.raises(RetentionError, match="run `referrals-migrate intake`"):
        step.due(NOW)


def test_the_command_refuses_an_unknown_service_and_a_bad_time(capsys):
    from services.retention import main

    assert main(["--service", "billing"]) == 2
    assert "unknown service 'billing': choose one of intake, advocacy, notifications" in capsys.readouterr().err
    assert main(["--now", "tomorrow"]) == 2
    assert "--now 'tomorrow' is not an ISO date" in capsys.readouterr().err


def test_a_closed_case_past_six_years_is_erased_and_a_declined_summary_anonymised_once():
    from services.advocacy import domain
    from services.advocacy.models import Advocate, Case, DataKey, Offer
    from services.advocacy.models import Base as AdvocacyBase
    from services.advocacy.uow import SqlAdvocacyUnitOfWork

    engine = create_engine("sqlite://", poolclass=StaticPool)
    AdvocacyBase.metadata.create_all(engine)
    sessions = enable_sealing(make_session_factory(engine), DataKey, KekRing(FileKek(os.urandom(32))))
    closed, recent = NOW - timedelta(days=6 * 366), NOW - timedelta(days=5 * 365)
    with sessions.begin() as session:
        session.add(Advocate(id="adv-1", provider_id="p-1", name="A", email="a@p1.example", languages=["en"],
                             max_caseload=5))  # fmt: skip
        for n, at, status in ((1, closed, domain.OFFER_ACCEPTED), (2, recent, domain.OFFER_ACCEPTED)):
            session.add(Offer(id=f"o-{n}", provider_id="p-1", referral_id=f"r-{n}", status=status,
                              summary={"region": "london"}, offered_at=at, updated_at=at))  # fmt: skip
            session.add(Case(id=f"c-{n}", provider_id="p-1", referral_id=f"r-{n}", offer_id=f"o-{n}",
                             advocate_id="adv-1", status=domain.CASE_CLOSED, referral={"subject": {"name": "X"}},
                             opened_at=at, closed_at=at))  # fmt: skip
        session.add(Offer(id="o-3", provider_id="p-1", referral_id="r-3", status=domain.OFFER_DECLINED,
                          summary={"region": "london"}, decline_note="no room", offered_at=NOW - timedelta(days=40),
                          updated_at=NOW - timedelta(days=31)))  # fmt: skip
    step = advocacy_retention.retention(functools.partial(SqlAdvocacyUnitOfWork, sessions, "p-1"), "p-1")

    due = {o.kind: o.count for o in step.due(NOW)}
    assert (due["closed_case"], due["declined_offer_summary"]) == (1, 1)
    done = {o.kind: o.count for o in step.run(NOW)}
    assert (done["closed_case"], done["declined_offer_summary"]) == (1, 1)
    assert {o.kind: o.count for o in step.due(NOW)}["closed_case"] == 0  # once
    with sessions() as session:
        assert session.get(Case, "c-1").referral is None and session.get(Case, "c-1").status == domain.CASE_CLOSED
        assert session.get(Case, "c-2").referral == {"subject": {"name": "X"}}  # five years: kept
        declined = session.get(Offer, "o-3")
        assert (declined.summary, declined.decline_note, declined.status) == ({}, None, domain.OFFER_DECLINED)
    engine.dispose()
