"""Retention on PostgreSQL (issue 14 Done when): a run with time passed in erases and deletes exactly what the
table says, once, across two workers racing (two engines, each its own step, as two intake workers run it)."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from services.intake.models import DataKey, DutyToNotifyRecord, Inbox, Outbox, Referral
from services.intake.retention import retention
from services.migrate import migrate
from services.retention import main as referrals_retention
from shared import crypto, sealed
from shared.db import make_engine, make_session_factory

NOW = datetime(2031, 6, 15, 12, 0, tzinfo=UTC)
DUE, KEPT = 150, 7  # per store: more than one batch each, so the two workers interleave


def _dtn(month: str) -> DutyToNotifyRecord:
    fields = dict(rule="mlsa2015_s52", notifying_authority_kind="police", notified_month=month, region="london")
    fields |= dict(local_authority=None, nationality="unknown", sex="male", exploitation_types=["criminal"])
    return DutyToNotifyRecord.of(fields | dict(exploitation_locations=["uk"], exploited_as_child=False))


def _referral(n: int, updated_at: datetime) -> Referral:
    return Referral(id=str(uuid.uuid4()), org_id="met-police", external_reference=f"REF-{n}", request_hash="h",
                    status="withdrawn", pathway="nrm", is_child=False, region="london", referred_at=updated_at,
                    received_at=updated_at, updated_at=updated_at,
                    body={"subject": {"name": f"Synthetic {n}"}})  # fmt: skip


def _outbox(sent_at: datetime | None) -> Outbox:
    return Outbox(id=str(uuid.uuid4()), type="referral.received", routing_key="k", payload="{}", sent_at=sent_at)


def test_a_retention_run_does_what_the_table_says_once_across_two_workers_racing(fresh_database, monkeypatch, capsys):
    url = fresh_database("intake")
    migrate("intake", url)
    engines = [make_engine(url, instrument=False) for _ in range(2)]
    keks = crypto.keks_from_env({}, production=False)  # dev's KEK, as the referrals-retention run below reads it
    sessions = [sealed.enable(make_session_factory(engine), DataKey, keks) for engine in engines]
    with sessions[0].begin() as session:
        session.add_all([_dtn("2025-05") for _ in range(DUE)] + [_dtn("2025-06") for _ in range(KEPT)])
        old, new = NOW - timedelta(days=31), NOW - timedelta(days=29)
        session.add_all([Inbox(consumer="intake", message_id=f"old-{n}", received_at=old) for n in range(DUE)])
        session.add_all([Inbox(consumer="intake", message_id=f"new-{n}", received_at=new) for n in range(KEPT)])
        session.add_all([_outbox(NOW - timedelta(days=8)) for _ in range(DUE)])
        session.add_all([_outbox(NOW - timedelta(days=6)) for _ in range(KEPT)] + [_outbox(None)])
        # Never allocated, last changed 13 months ago (erased) or 11 (kept).
        session.add_all([_referral(n, NOW - timedelta(days=396)) for n in range(DUE)])
        session.add_all([_referral(DUE + n, NOW - timedelta(days=335)) for n in range(KEPT)])
    try:
        monkeypatch.setenv("INTAKE_DATABASE_URL", url)
        assert referrals_retention(["--dry-run", "--service", "intake", "--now", "2031-06-15T12:00:00Z"]) == 0
        printed = capsys.readouterr().out
        assert f"dtn_statistics           due {DUE} (delete)" in printed
        assert "rule dtn_statistics@intake:2015-11-01, 6 years" in printed
        assert "access_log               due 0 (delete)" in printed  # the table exists (issue 15), nothing old

        steps = [retention(factory) for factory in sessions]
        for step in steps:
            step.batch = 40
        barrier = threading.Barrier(2)
        results: list[dict[str, int]] = []

        def race(step):
            barrier.wait()
            results.append({o.kind: o.count for o in step.run(NOW)})

        threads = [threading.Thread(target=race, args=(step,)) for step in steps]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert len(results) == 2
        for kind in ("dtn_statistics", "referral_never_allocated", "inbox", "outbox"):
            assert results[0][kind] + results[1][kind] == DUE, kind  # each row once, between them
        with sessions[0]() as session:
            assert session.scalar(select(func.count()).select_from(DutyToNotifyRecord)) == KEPT
            assert set(session.scalars(select(DutyToNotifyRecord.notified_month))) == {"2025-06"}
            assert session.scalar(select(func.count()).select_from(Inbox)) == KEPT
            assert session.scalar(select(func.count()).select_from(Outbox)) == KEPT + 1  # the unsent row stays
            erased = session.scalars(select(Referral).where(Referral.erased_at.is_not(None))).all()
            assert len(erased) == DUE and all(r.body == {} and r.erased_at == NOW for r in erased)
            kept = set(session.scalars(select(DataKey.referral_id)))  # the erased are crypto-shredded
            assert len(kept) == KEPT and not kept & {r.id for r in erased}
            assert (
                session.scalar(select(func.count()).select_from(Referral).where(Referral.erased_at.is_(None))) == KEPT
            )
        assert all(o.count == 0 for o in steps[1].run(NOW))  # nothing more at the same time
    finally:
        for engine in engines:
            engine.dispose()
