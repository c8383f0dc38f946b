"""advocacy's use cases and event handlers over a fake unit of work (tests/support/fake_advocacy.py): no
database, no broker. Events arrive through the real EventHandlers (the catalogue's checks and the inbox), and
what the instance stages goes through the real catalogue, so a payload it would refuse fails here too."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import pytest

from contracts import events
from services.advocacy import domain
from services.advocacy.bootstrap import Continuity, assemble
from services.advocacy.continuity.policy import load_policy
from services.advocacy.continuity.scheduler import ClockScheduler
from services.advocacy.continuity.wall_clock import FixedClock
from services.advocacy.handlers import subscriptions
from services.advocacy.models import Case
from services.advocacy.web.records import clock_state
from shared.inbox import EventHandlers
from shared.messaging.envelope import Event
from shared.messaging.errors import PermanentError
from support.events import arriving, payload
from support.fake_advocacy import FakeAdvocacyUnitOfWork

PROVIDER, OTHER = "charity-u", "charity-v"
POLICY = load_policy()
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class StubIntake:
    """intake's `GET /v1/referrals/{id}`: the disclosed referral of a synthetic person, each fetch recorded."""

    def __init__(self, *, child: bool = False):
        self.child = child
        self.fetched: list[str] = []

    def fetch_referral(self, referral_id: str) -> dict:
        self.fetched.append(referral_id)
        born = (NOW.date() - timedelta(days=int(17.9 * 365.25))) if self.child else date(1996, 5, 1)
        return {
            "id": referral_id,
            "status": "allocated",
            "pathway": "nrm",
            "is_child": self.child,
            "received_at": "2026-03-01T10:00:00+00:00",
            "location": {"region": "london"},
            "subject": {"given_name": "Kalox", "family_name": "Synthetic-Mizux", "date_of_birth": born.isoformat()},
        }


@dataclass
class Instance:
    """One charity's rules over its own fake unit of work."""

    provider_id: str = PROVIDER
    clock: FixedClock = field(default_factory=lambda: FixedClock(NOW))
    intake: StubIntake = field(default_factory=StubIntake)
    auto_accept: bool = False

    def __post_init__(self) -> None:
        self.rules: Continuity = assemble(self.provider_id, POLICY, self.clock)
        self.uow = FakeAdvocacyUnitOfWork(self.provider_id)
        handled = subscriptions(self.rules, self.intake, auto_accept=self.auto_accept)
        self.consume = EventHandlers(f"advocacy.{self.provider_id}", self.uow, handled, trusted={"guest"})

    def advocate(self, *, languages=("sq",), max_caseload: int = 3, email: str | None = None):
        with self.uow:
            return self.rules.casework.create_advocate(
                self.uow,
                name="Advocate Synthetic-Kalo",
                email=email or f"{uuid.uuid4().hex[:8]}@{self.provider_id}.example",
                languages=list(languages),
                max_caseload=max_caseload,
            )

    def offer(self, *, languages=("sq",)) -> events.ReferralOffered:
        """A `referral.offered` delivered as the worker's consumer would; its payload."""
        data = offered(self.provider_id, languages=languages)
        self.consume(arriving(data))
        return data

    def open_case(self) -> Case:
        """An advocate, an offer accepted, intake's confirmation: an open case."""
        self.advocate()
        offer = self.offer()
        with self.uow:
            case = self.rules.casework.accept_offer(self.uow, offer.offer_id, actor="advocate:test")
        self.consume(confirmed(case))
        assert case.status == domain.CASE_OPEN
        return case

    def published(self, type_: type) -> list:
        return self.uow.events(type_)


def offered(provider_id: str = PROVIDER, *, languages=("sq",)) -> events.ReferralOffered:
    return payload(
        "referral.offered",
        referral_id=str(uuid.uuid4()),
        offer_id=str(uuid.uuid4()),
        provider_id=provider_id,
        org_id="met-police",
        offered_at="2026-03-02T08:00:00+00:00",
        respond_by="2026-03-03T08:00:00+00:00",
        summary={"is_child": False, "pathway": "nrm", "region": "london", "languages": list(languages)},
    )


def confirmed(case: Case) -> Event:
    data = {"referral_id": case.referral_id, "offer_id": case.offer_id, "provider_id": case.provider_id}
    return arriving(payload("allocation.confirmed", **data, case_id=case.id))


# --- offers and cases ----------------------------------------------------------------------------------


def test_an_advocate_joining_announces_the_providers_places_and_a_second_with_the_same_email_is_refused():
    charity = Instance()
    charity.advocate(max_caseload=4, email="kalo@charity-u.example")
    [capacity] = charity.published(events.ProviderCapacityChanged)
    assert (capacity.capacity, capacity.advocates) == (4, 1)
    with pytest.raises(domain.AdvocateEmailTaken):
        charity.advocate(email="kalo@charity-u.example")
    assert charity.uow.rollbacks == 1 and len(charity.published(events.ProviderCapacityChanged)) == 1


def test_an_offer_is_recorded_pending_and_a_redelivery_records_nothing_more():
    charity = Instance()
    event = arriving(offered())
    charity.consume(event)
    charity.consume(event)  # the same message again: the inbox says it was handled
    [offer] = charity.uow.offers.rows.values()
    assert offer.status == domain.OFFER_PENDING and offer.summary["org_id"] == "met-police"
    assert charity.uow.timeline.kinds(offer.id) == [domain.OFFER_RECEIVED]


def test_auto_accept_gives_the_offer_to_the_advocate_who_speaks_the_survivors_language():
    charity = Instance(auto_accept=True)
    charity.advocate(languages=["en"])
    speaker = charity.advocate(languages=["sq"])
    offer = charity.offer(languages=("sq",))
    [case] = charity.uow.cases.rows.values()
    assert case.advocate is speaker and case.status == domain.CASE_OPENING
    [accepted] = charity.published(events.OfferAccepted)
    assert (accepted.offer_id, accepted.case_id, accepted.advocate.email) == (
        offer.offer_id,
        case.id,
        speaker.email,
    )
    assert charity.published(events.ProviderCapacityChanged)[-1].capacity == 5  # 3 + 3 places, one taken


def test_auto_accept_with_nobody_free_leaves_the_offer_pending():
    charity = Instance(auto_accept=True)
    charity.advocate(max_caseload=0)
    charity.offer()
    [offer] = charity.uow.offers.rows.values()
    assert offer.status == domain.OFFER_PENDING and charity.uow.cases.rows == {}
    assert charity.published(events.OfferAccepted) == []


@pytest.mark.parametrize(
    ("choose", "refusal"),
    [
        ("unknown", domain.AdvocateNotFound),
        ("full", domain.AdvocateUnavailable),
        ("inactive", domain.AdvocateUnavailable),
    ],
)
def test_accepting_for_an_advocate_who_cannot_take_the_case_is_refused_and_writes_nothing(choose, refusal):
    charity = Instance()
    full = charity.advocate(max_caseload=0)
    inactive = charity.advocate()
    inactive.active = False
    chosen = {"unknown": "no-such-advocate", "full": full.id, "inactive": inactive.id}[choose]
    offer = charity.offer()
    published = len(charity.uow.published)
    with pytest.raises(refusal), charity.uow:
        charity.rules.casework.accept_offer(charity.uow, offer.offer_id, actor="advocate:x", advocate_id=chosen)
    assert charity.uow.offers.rows[offer.offer_id].status == domain.OFFER_PENDING
    assert len(charity.uow.published) == published


def test_a_declined_offer_sends_the_code_and_keeps_the_note_here():
    charity = Instance()
    offer = charity.offer()
    with charity.uow:
        charity.rules.casework.decline_offer(
            charity.uow, offer.offer_id, actor="advocate:x", reason="no_capacity", note="Synthetic note"
        )
    [declined] = charity.published(events.OfferDeclined)
    assert declined.reason == "no_capacity" and "note" not in events.OfferDeclined.__struct_fields__
    assert charity.uow.offers.rows[offer.offer_id].decline_note == "Synthetic note"
    with pytest.raises(domain.OfferNotPending), charity.uow:
        charity.rules.casework.accept_offer(charity.uow, offer.offer_id, actor="advocate:x")


def test_intakes_confirmation_fetches_the_referral_once_opens_the_case_and_starts_its_rg_clock():
    charity = Instance()
    case = charity.open_case()
    assert charity.intake.fetched == [case.referral_id]
    assert case.referral["subject"]["given_name"] == "Kalox"
    [opened] = charity.published(events.CaseOpened)
    assert (opened.case_id, opened.referral_id) == (case.id, case.referral_id)
    [clock] = charity.uow.clocks.of_case(case.id)
    assert clock.kind == "rg_decision" and clock.stopped_at is None
    assert charity.uow.timeline.kinds(case.offer_id)[-3:] == [
        domain.REFERRAL_DISCLOSED,
        domain.CASE_OPENED,
        domain.CLOCK_STARTED,
    ]
    charity.consume(confirmed(case))  # another delivery of the confirmation: no second fetch
    assert charity.intake.fetched == [case.referral_id]


def test_a_confirmation_naming_a_case_this_provider_never_opened_is_parked():
    charity = Instance()
    forged = Case(id="case-x", referral_id="r-x", offer_id="o-x", provider_id=PROVIDER)
    with pytest.raises(PermanentError, match="never opened"):
        charity.consume(confirmed(forged))


def test_a_withdrawn_referral_closes_the_case_and_gives_its_place_back():
    charity = Instance()
    case = charity.open_case()
    charity.consume(
        arriving(payload("offer.withdrawn", referral_id=case.referral_id, provider_id=PROVIDER, offer_id=case.offer_id))
    )
    assert case.status == domain.CASE_CLOSED and case.closed_at is not None
    assert charity.published(events.ProviderCapacityChanged)[-1].capacity == 3


def test_an_acceptance_that_reached_intake_too_late_is_undone_when_the_offer_expires():
    charity = Instance(auto_accept=True)
    charity.advocate()
    offer = charity.offer()
    [case] = charity.uow.cases.rows.values()
    expired = payload("offer.expired", referral_id=offer.referral_id, provider_id=PROVIDER, offer_id=offer.offer_id)
    charity.consume(arriving(expired))
    assert charity.uow.offers.rows[offer.offer_id].status == "expired"
    assert case.status == domain.CASE_CLOSED


# --- continuity of care: decisions, clocks, transitions ---------------------------------------------------


def test_a_positive_rg_stops_the_rg_clock_and_starts_the_recovery_period_and_the_earliest_cg_date():
    charity = Instance()
    case = charity.open_case()
    with charity.uow:
        charity.rules.nrm.record_decision(
            charity.uow, case, stage="rg", outcome="positive", decided_on=date(2026, 3, 5), actor="advocate:x"
        )
    running = {c.kind: c for c in charity.uow.clocks.running(case.id)}
    assert set(running) == {"recovery_period", "cg_not_before"}
    assert running["recovery_period"].due_on == date(2026, 4, 4)  # 30 days since 2022-12-13
    [rg] = [c for c in charity.uow.clocks.of_case(case.id) if c.kind == "rg_decision"]
    assert rg.stopped_reason == "RG decision recorded"


def test_a_decision_no_policy_row_covers_is_refused_naming_its_date_and_leaves_nothing():
    charity = Instance()
    case = charity.open_case()
    before = (len(charity.uow.clocks.rows), len(charity.uow.published))
    with pytest.raises(domain.DecisionUndatable) as refused, charity.uow:
        charity.rules.nrm.record_decision(
            charity.uow, case, stage="rg", outcome="positive", decided_on=date(1999, 1, 1), actor="advocate:x"
        )
    assert refused.value.field == "decided_on"
    assert charity.uow.rollbacks >= 1 and len(charity.uow.published) == before[1]


def test_a_positive_cg_plans_move_on_once_and_a_reconsidered_cg_moves_its_date():
    charity = Instance()
    case = charity.open_case()
    nrm, uow = charity.rules.nrm, charity.uow
    with uow:
        first = nrm.record_decision(uow, case, stage="cg", outcome="negative", decided_on=date(2026, 9, 1), actor="a")
    with uow:
        nrm.request_reconsideration(uow, case, decision_id=first.id, requested_on=date(2026, 9, 10), actor="a")
        nrm.record_decision(uow, case, stage="cg", outcome="positive", decided_on=date(2026, 10, 1), actor="a",
                            on_reconsideration=True)  # fmt: skip
    [move_on] = [t for t in uow.transitions.of_case(case.id) if t.kind == domain.MOVE_ON]
    assert move_on.planned_for > date(2026, 10, 1) and move_on.status == domain.TRANSITION_PLANNED
    assert len(charity.published(events.TransitionPlanned)) == 1


def test_a_reconsideration_of_another_cases_decision_is_refused_naming_the_decision():
    charity = Instance()
    mine, theirs = charity.open_case(), charity.open_case()
    with charity.uow:
        decision = charity.rules.nrm.record_decision(
            charity.uow, theirs, stage="rg", outcome="negative", decided_on=date(2026, 3, 5), actor="a"
        )
    with pytest.raises(domain.DecisionNotOfCase) as refused, charity.uow:
        charity.rules.nrm.request_reconsideration(
            charity.uow, mine, decision_id=decision.id, requested_on=date(2026, 3, 6), actor="a"
        )
    assert refused.value.field == "decision_id"


def test_an_advocate_handover_needs_its_checklist_done_and_then_changes_who_holds_the_case():
    charity = Instance()
    case = charity.open_case()
    other = charity.advocate(languages=["en"])
    transitions, uow = charity.rules.transitions, charity.uow
    with uow:
        planned = transitions.plan(uow, case, kind=domain.ADVOCATE_HANDOVER, planned_for=date(2026, 4, 1), actor="a",
                                   to_advocate_id=other.id)  # fmt: skip
    with pytest.raises(domain.ChecklistIncomplete), uow:
        transitions.complete(uow, case, planned.id, actor="a")
    with uow:
        transitions.update(uow, case, planned.id, actor="a", ticks=dict.fromkeys(planned.checklist, True))
        transitions.complete(uow, case, planned.id, actor="a")
    assert case.advocate is other and planned.status == domain.TRANSITION_COMPLETED
    [done] = charity.published(events.TransitionCompleted)
    assert done.transition_id == planned.id and done.kind == domain.ADVOCATE_HANDOVER


def test_a_provider_handover_sends_the_case_to_the_receiver_who_opens_it_once_intake_moves_the_allocation():
    sender, receiver = Instance(), Instance(provider_id=OTHER, intake=StubIntake(child=True))
    case = sender.open_case()
    with sender.uow:
        sender.rules.nrm.record_decision(sender.uow, case, stage="rg", outcome="positive", decided_on=date(2026, 3, 5),
                                         actor="a")  # fmt: skip
        move = sender.rules.transitions.plan(
            sender.uow, case, kind=domain.PROVIDER_HANDOVER, planned_for=date(2026, 4, 1), actor="a",
            receiving_provider_id=OTHER,
        )  # fmt: skip
        sender.rules.transitions.update(sender.uow, case, move.id, actor="a", ticks=dict.fromkeys(move.checklist, True))
        sender.rules.transitions.complete(sender.uow, case, move.id, actor="a")
    assert case.status == domain.CASE_OPEN  # offered first (tests/unit/test_advocacy_handover.py)
    receiver.advocate()
    [(offered, _)] = [(e, k) for e, k in sender.uow.published if e.type == "case.handover_offered"]
    receiver.consume(arriving(offered.data, publisher=f"advocacy-{PROVIDER}"))
    with receiver.uow:
        receiver.rules.handover.accept(receiver.uow, move.id, actor="a")
    [accepted] = [e for e, _ in receiver.uow.published if e.type == "case.handover_accepted"]
    sender.consume(arriving(accepted.data, publisher=f"advocacy-{OTHER}"))
    assert case.status == domain.CASE_CLOSED and sender.uow.clocks.running(case.id) == []
    [(handover_event, key)] = [(e, k) for e, k in sender.uow.published if e.type == "case.handover"]
    assert key == f"case.handover.{OTHER}"
    assert [e.data.to_provider_id for e, _ in sender.uow.published if e.type == "case.handed_over"] == [OTHER]

    receiver.consume(arriving(handover_event.data, publisher=f"advocacy-{PROVIDER}"))
    [received] = receiver.uow.cases.rows.values()
    assert received.status == domain.CASE_OPENING and received.referral is None
    assert {c.kind for c in receiver.uow.clocks.running(received.id)} == {"recovery_period", "cg_not_before"}
    assert receiver.published(events.CaseOpened) == []  # nothing said in its name before intake moves it

    moved = payload(
        "allocation.transferred", referral_id=case.referral_id, provider_id=OTHER, from_provider_id=PROVIDER
    )
    receiver.consume(arriving(moved))
    assert received.status == domain.CASE_OPEN and receiver.intake.fetched == [case.referral_id]
    assert [t.kind for t in receiver.uow.transitions.of_case(received.id)] == [domain.TURNING_18]  # planned here


def test_the_scheduler_fires_each_due_clock_and_missed_transition_once_and_nothing_for_a_closed_case():
    charity = Instance()
    case, closed = charity.open_case(), charity.open_case()
    with charity.uow:
        charity.rules.transitions.plan(charity.uow, case, kind=domain.RELOCATION, planned_for=date(2026, 3, 4),
                                       actor="a", receiving_agency="leeds-city-council")  # fmt: skip
    closed.status = domain.CASE_CLOSED
    scheduler = ClockScheduler(charity.uow, PROVIDER, charity.clock)
    charity.clock.advance(days=30)  # past the RG clock's due date and the relocation's planned date
    fired = scheduler.tick()
    assert (fired.breached, fired.missed) == (1, 1)
    assert scheduler.tick().total == 0
    [breached] = charity.published(events.ClockBreached)
    [missed] = charity.published(events.TransitionMissed)
    assert breached.case_id == missed.case_id == case.id and breached.kind == "rg_decision"


# --- clocks by nature (issue 12): only a deadline is ever breached -----------------------------------------


def states(charity: Instance, case: Case) -> dict[str, tuple[str, str]]:
    day = charity.clock.now().date()
    return {c.kind: (c.nature, clock_state(c, day)) for c in charity.uow.clocks.of_case(case.id)}


def test_a_positive_rg_dated_60_days_ago_leaves_the_minimums_reached_and_breaches_nothing():
    charity = Instance()
    case = charity.open_case()
    scheduler = ClockScheduler(charity.uow, PROVIDER, charity.clock)
    charity.clock.advance(days=62)  # the decision is recorded late: 3 May, for an RG of 4 March
    with charity.uow:
        charity.rules.nrm.record_decision(
            charity.uow, case, stage="rg", outcome="positive", decided_on=date(2026, 3, 4), actor="advocate:x"
        )
    fired = scheduler.tick()
    assert scheduler.tick().total == 0
    found = states(charity, case)
    assert found["recovery_period"] == found["cg_not_before"] == ("minimum", "reached")
    assert found["rg_decision"] == ("deadline", "stopped")
    # Support continues until the CG decision: nobody missed anything, and nothing tells the police so.
    assert (fired.due_soon, fired.breached) == (0, 0)
    assert charity.published(events.ClockBreached) == charity.published(events.ClockDueSoon) == []


def test_a_minimum_is_running_until_its_date_and_reached_on_it():
    charity = Instance()
    case = charity.open_case()
    with charity.uow:
        charity.rules.nrm.record_decision(
            charity.uow, case, stage="rg", outcome="positive", decided_on=date(2026, 3, 2), actor="advocate:x"
        )
    assert states(charity, case)["cg_not_before"] == ("minimum", "running")
    charity.clock.advance(days=30)  # 1 April: the earliest CG date
    assert states(charity, case)["cg_not_before"] == ("minimum", "reached")
    assert ClockScheduler(charity.uow, PROVIDER, charity.clock).tick().breached == 0


def test_an_rg_decision_overdue_breaches_once():
    charity = Instance()
    case = charity.open_case()
    scheduler = ClockScheduler(charity.uow, PROVIDER, charity.clock)
    charity.clock.advance(days=20)
    assert scheduler.tick().breached == 1
    assert scheduler.tick().total == 0
    [breached] = charity.published(events.ClockBreached)
    assert (breached.kind, breached.status, breached.case_id) == ("rg_decision", "breached", case.id)
    assert states(charity, case)["rg_decision"] == ("deadline", "breached")


def test_move_on_support_gives_its_whole_period_as_notice_and_ends_without_a_breach():
    charity = Instance()
    case = charity.open_case()
    scheduler = ClockScheduler(charity.uow, PROVIDER, charity.clock)
    with charity.uow:
        for stage in ("rg", "cg"):
            charity.rules.nrm.record_decision(
                charity.uow, case, stage=stage, outcome="positive", decided_on=date(2026, 3, 2), actor="advocate:x"
            )
    [move_on] = [c for c in charity.uow.clocks.of_case(case.id) if c.kind == "move_on"]
    assert (move_on.nature, move_on.notice_on) == ("support_end", move_on.starts_on)
    assert scheduler.tick().due_soon == 1  # the day it starts: housing and the person hear it now
    [notice] = charity.published(events.ClockDueSoon)
    assert (notice.kind, notice.status) == ("move_on", "due_soon")
    charity.clock.advance(days=60)
    assert scheduler.tick().breached == 0  # (the move-on transition, a deadline, is missed: planned, not done)
    assert states(charity, case)["move_on"] == ("support_end", "ended")
    assert charity.published(events.ClockBreached) == []


def test_a_second_decision_of_a_stage_is_refused_unless_it_is_a_reconsidered_outcome():
    charity = Instance()
    case = charity.open_case()
    nrm, uow = charity.rules.nrm, charity.uow
    with uow:
        nrm.record_decision(uow, case, stage="rg", outcome="positive", decided_on=date(2026, 3, 5), actor="a")
    clocks, published = len(uow.clocks.rows), len(uow.published)
    with pytest.raises(domain.DecisionAlreadyRecorded), uow:  # the same POST again: a retry, or a mistake
        nrm.record_decision(uow, case, stage="rg", outcome="positive", decided_on=date(2026, 3, 5), actor="a")
    assert (len(uow.nrm.decisions), len(uow.clocks.rows), len(uow.published)) == (1, clocks, published)
    with uow:
        nrm.record_decision(uow, case, stage="rg", outcome="negative", decided_on=date(2026, 3, 20), actor="a",
                            on_reconsideration=True)  # fmt: skip
    assert len(uow.nrm.decisions) == 2


def test_a_reconsideration_requested_in_time_stops_its_window_so_it_never_breaches():
    charity = Instance()
    case = charity.open_case()
    nrm, uow = charity.rules.nrm, charity.uow
    with uow:
        negative = nrm.record_decision(uow, case, stage="rg", outcome="negative", decided_on=date(2026, 3, 1),
                                       actor="a")  # fmt: skip
    assert "reconsideration_window" in {c.kind for c in uow.clocks.running(case.id)}
    with uow:
        nrm.request_reconsideration(uow, case, decision_id=negative.id, requested_on=date(2026, 3, 10), actor="a")
    assert "reconsideration_window" not in {c.kind for c in uow.clocks.running(case.id)}
    charity.clock.advance(days=60)
    ClockScheduler(charity.uow, PROVIDER, charity.clock).tick()
    assert [b.kind for b in charity.published(events.ClockBreached)] == []
