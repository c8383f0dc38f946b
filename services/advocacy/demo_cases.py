"""Demo cases for `make run`'s advocate page: synthetic people (shared.testing) with NRM clocks, a child
nearing 18, and one overdue deadline. Idempotent: each demo case has a fixed id derived from the provider.

They are written as if intake had allocated them (an accepted offer and a disclosed referral), then go
through the same continuity rules as a real case: `plan_for_new_case`, `record_decision`. Their events name
the organisation `demo-police`, so no real agency's subscription receives them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, update

from contracts.events import CATALOGUE, NOTIFICATIONS
from services.advocacy import domain
from services.advocacy.bootstrap import Continuity
from services.advocacy.casework.contacts import CONTACT_OVERDUE_KIND, counted_from
from services.advocacy.casework.timeline import note
from services.advocacy.continuity.wall_clock import LONDON
from services.advocacy.models import Advocate, Case, Clock, Offer, Outbox
from services.advocacy.uow import SqlAdvocacyUnitOfWork
from shared.testing import date_of_birth_for_age, referral_body

DEMO_ORG = "demo-police"
CASE_NEWS = [e.name for e in CATALOGUE.consumed_by(NOTIFICATIONS) if e.publisher == "provider"]
COORDINATOR: dict[str, Any] = {
    "name": "Coordinator Sazu Demo",
    "email": "sazu.demo@demo-charity.example",
    "languages": ["en"],
}

# (seed, advocate index, child, referred days ago, region, decisions as (stage, outcome, days ago),
#  contacts as (days ago, method, outcome))
DemoCase = tuple[int, int, bool, int, str, tuple[tuple[str, str, int], ...], tuple[tuple[int, str, str], ...]]
DEMO_CASES: tuple[DemoCase, ...] = (
    # No RG decision, expected 43 days ago: overdue. Last reached 20 days ago, so it needs attention too.
    (101, 0, False, 50, "london", (), ((45, "in_person", "reached"), (20, "phone", "reached"),
                                       (3, "phone", "no_answer"))),
    # 17 years 10 months: turning 18 soon.
    (102, 0, True, 10, "north_west", (("rg", "positive", 3),), ((9, "in_person", "reached"), (2, "video", "reached"))),
    # Both minimums reached 20 days ago: support continues until the CG decision, so not overdue (issue 12).
    (103, 1, False, 60, "london", (("rg", "positive", 50),), ((6, "phone", "reached"),)),
    # Scotland: 90-day recovery period.
    (104, 1, False, 30, "scotland", (("rg", "positive", 20),), ((4, "in_person", "reached"),)),
)  # fmt: skip


def demo_id(provider_id: str, seed: int, what: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"referrals-demo/{provider_id}/{what}/{seed}"))


def ensure_coordinator(uow: SqlAdvocacyUnitOfWork, continuity: Continuity, max_caseload: int) -> int:
    if uow.advocates.by_email(COORDINATOR["email"]) is not None:
        return 0
    coordinator = continuity.casework.create_advocate(uow, max_caseload=max_caseload, **COORDINATOR)
    coordinator.role = domain.ROLE_COORDINATOR
    return 1


def ensure_cases(uow: SqlAdvocacyUnitOfWork, continuity: Continuity, advocates: list[Advocate], today: date) -> int:
    """Create the demo cases that are missing. Returns how many were created now."""
    created = 0
    provider_id = continuity.casework.provider_id
    for seed, who, child, referred_ago, region, decisions, contacts in DEMO_CASES:
        case_id = demo_id(provider_id, seed, "case")
        if uow.cases.get(case_id) is not None:
            continue
        referred_at = datetime.combine(today - timedelta(days=referred_ago), datetime.min.time(), tzinfo=UTC)
        referral = _referral(seed, child, referred_at, region)
        case = _open_case(uow, provider_id, case_id, seed, advocates[who], referral, referred_at)
        continuity.casework.index.write(uow, case, referral)  # searchable by name on the page
        continuity.nrm.plan_for_new_case(uow, case, referral, actor="demo-seed")
        for stage, outcome, ago in decisions:
            continuity.nrm.record_decision(
                uow,
                case,
                stage=stage,
                outcome=outcome,
                decided_on=today - timedelta(days=ago),
                actor=f"advocate:{advocates[who].id}",
            )
        now, actor = continuity.wall_clock.now(), f"advocate:{advocates[who].id}"
        for ago, method, outcome in contacts:
            at = now - timedelta(days=ago)
            continuity.contacts.log(uow, case, at=at, method=method, outcome=outcome, actor=actor)
        _announce_nothing(uow, continuity, case)
        created += 1
    return created


def _announce_nothing(uow: SqlAdvocacyUnitOfWork, continuity: Continuity, case: Case) -> None:
    """A demo case has no referral at intake, so no agency hears of it: nobody could (notifications would
    retry its events, then park them). Its clocks, and a no-contact episode it is in, count as announced
    already, and what seeding staged goes (demo tooling, on the database itself: the rules staged those events
    as they would for a real case)."""
    session = uow.session
    session.flush()
    now = continuity.wall_clock.now()
    if case.contact_overdue_at is None and continuity.contacts.lapsed(case, now):
        case.contact_overdue_at = now  # shown under "Needs attention", as a real episode would be
        since = counted_from(case).astimezone(LONDON).date().isoformat()
        note(uow, case.offer_id, CONTACT_OVERDUE_KIND, "demo-seed", f"no successful contact since {since}", now)
    session.execute(
        update(Clock)
        .where(Clock.case_id == case.id)
        .values(due_soon_fired_at=func.coalesce(Clock.due_soon_fired_at, now),
                breached_fired_at=func.coalesce(Clock.breached_fired_at, now))
    )  # fmt: skip
    session.execute(delete(Outbox).where(Outbox.type.in_(CASE_NEWS), Outbox.payload.contains(case.referral_id)))


def _referral(seed: int, child: bool, referred_at: datetime, region: str) -> dict[str, Any]:
    body = referral_body(child=child, seed=seed, referred_at=referred_at.isoformat())
    if child:  # 17 years 10 months on the day of referral
        body["subject"]["date_of_birth"] = date_of_birth_for_age(17, 10, today=referred_at.date())
    body["location"] = {"region": region}
    # The shape intake discloses: the body plus the record's own fields.
    return {**body, "id": demo_id("referral", seed, "referral"), "status": "allocated", "pathway": "nrm",
            "is_child": child, "received_at": referred_at.isoformat()}  # fmt: skip


def _open_case(uow: SqlAdvocacyUnitOfWork, provider_id: str, case_id: str, seed: int, advocate: Advocate, referral, at):
    subject = referral["subject"]
    summary = domain.offer_summary(
        {"org_id": DEMO_ORG, "external_reference": f"DEMO-{seed}", "is_child": referral["is_child"],
         "pathway": "nrm", "region": referral["location"]["region"], "languages": subject["languages"],
         "interpreter_needed": subject.get("interpreter_needed"), "sex": subject.get("sex"),
         "exploitation_types": sorted({e["type"] for e in referral["exploitation"]}), "needs": referral.get("needs")}
    )  # fmt: skip
    offer = Offer(
        id=demo_id(provider_id, seed, "offer"),
        provider_id=provider_id,
        referral_id=referral["id"],
        status=domain.OFFER_ACCEPTED,
        summary=summary,
        offered_at=at,
        respond_by=None,
        responded_at=at,
        received_at=at,
        updated_at=at,
    )
    uow.offers.add(offer)
    case = Case(
        id=case_id,
        provider_id=provider_id,
        referral_id=referral["id"],
        offer_id=offer.id,
        advocate=advocate,
        status=domain.CASE_OPEN,
        referral=referral,
        opened_at=at,
        updated_at=at,
    )
    uow.cases.add(case)
    for kind, detail in ((domain.OFFER_RECEIVED, "demo offer"), (domain.CASE_OPENED, f"case {case.id} open")):
        note(uow, offer.id, kind, "demo-seed", detail, at)
    return case
