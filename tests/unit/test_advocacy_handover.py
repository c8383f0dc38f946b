"""Provider handover and relocation that keep people safe (issue 12 item 6), over the fake unit of work: two
charities' rules, each event delivered to the other through the real catalogue checks (routing key, the
broker-validated publisher, the schema) as its worker's consumer would."""

from __future__ import annotations

from datetime import date, timedelta

import msgspec
import pytest
from test_advocacy_use_cases import NOW, OTHER, PROVIDER, Instance, StubIntake

from contracts import events
from services.advocacy import domain
from services.advocacy.config import AdvocacyConfig, settings_from_env
from services.advocacy.continuity.scheduler import ClockScheduler
from shared.config import ConfigError
from shared.messaging.errors import PermanentError
from support.events import arriving, payload

DONE = {"receiving_agency_informed": True, "accommodation_confirmed": True, "handover_summary_written": True}


def deliver(source: Instance, target: Instance, type_: str, *, publisher: str | None = None) -> None:
    """What `source` published of `type_`, consumed by `target` as from `source`'s broker user."""
    sent = [e for e, _ in source.uow.published if e.type == type_]
    assert sent, f"{source.provider_id} published no {type_}"
    for event in sent:
        target.consume(arriving(event.data, publisher=publisher or f"advocacy-{source.provider_id}"))


def offer_handover(sender: Instance, case, *, to: str = OTHER):
    with sender.uow:
        move = sender.rules.transitions.plan(
            sender.uow, case, kind=domain.PROVIDER_HANDOVER, planned_for=date(2026, 4, 1), actor="a",
            receiving_provider_id=to,
        )  # fmt: skip
        sender.rules.transitions.update(sender.uow, case, move.id, actor="a", ticks=DONE)
        sender.rules.transitions.complete(sender.uow, case, move.id, actor="a")
    return move


def two_charities(*, receiver_caseload: int = 2):
    sender, receiver = Instance(), Instance(provider_id=OTHER, intake=StubIntake())
    case = sender.open_case()
    with sender.uow:
        sender.rules.nrm.record_decision(sender.uow, case, stage="rg", outcome="positive", decided_on=date(2026, 3, 1),
                                         actor="a")  # fmt: skip
    advocate = receiver.advocate(max_caseload=receiver_caseload)
    return sender, receiver, case, advocate


def test_completing_a_provider_handover_offers_it_with_a_summary_and_a_deadline_and_the_case_stays():
    sender, receiver, case, _ = two_charities()
    move = offer_handover(sender, case)
    assert case.status == domain.CASE_OPEN and move.status == domain.TRANSITION_IN_PROGRESS
    assert move.respond_by == NOW + timedelta(hours=72)
    assert [k for e, k in sender.uow.published if e.type.startswith("case.handover")] == [
        f"case.handover_offered.{OTHER}"
    ]
    [offered] = sender.published(events.CaseHandoverOffered)
    assert set(msgspec.to_builtins(offered.summary)) <= {f.name for f in msgspec.structs.fields(events.ReferralSummary)}
    with pytest.raises(domain.HandoverAwaitingAnswer), sender.uow:  # a second completion is not a second offer
        sender.rules.transitions.complete(sender.uow, case, move.id, actor="a")

    deliver(sender, receiver, "case.handover_offered")
    [pending] = receiver.uow.handovers.of_status(domain.HANDOVER_PENDING)
    assert (pending.id, pending.from_provider_id, pending.respond_by) == (move.id, PROVIDER, move.respond_by)
    assert receiver.uow.cases.rows == {}  # nothing taken before it is accepted


def test_an_accepted_handover_takes_a_place_within_the_cap_then_the_case_moves_and_leaves_no_copy_behind():
    sender, receiver, case, advocate = two_charities(receiver_caseload=1)
    move = offer_handover(sender, case)
    deliver(sender, receiver, "case.handover_offered")
    with receiver.uow:
        receiver.rules.handover.accept(receiver.uow, move.id, actor="coordinator", advocate_id=advocate.id)
    [reserved] = receiver.uow.cases.rows.values()
    assert reserved.advocate is advocate and reserved.status == domain.CASE_OPENING
    assert receiver.published(events.ProviderCapacityChanged)[-1].capacity == 0  # the place is taken now
    assert case.referral is not None

    deliver(receiver, sender, "case.handover_accepted")
    assert move.status == domain.TRANSITION_COMPLETED and move.outcome == domain.OUTCOME_ACCEPTED
    assert case.status == domain.CASE_CLOSED and sender.uow.clocks.running(case.id) == []
    assert case.referral is None  # no full copy stays readable at the sender
    assert sender.published(events.ProviderCapacityChanged)[-1].capacity == 3  # its place is free

    deliver(sender, receiver, "case.handover")
    assert list(receiver.uow.cases.rows.values()) == [reserved]  # into the place taken, not a new case
    assert {c.kind for c in receiver.uow.clocks.running(reserved.id)} == {"recovery_period", "cg_not_before"}
    receiver.consume(arriving(payload("allocation.transferred", referral_id=case.referral_id, provider_id=OTHER,
                                      from_provider_id=PROVIDER)))  # fmt: skip
    assert reserved.status == domain.CASE_OPEN and receiver.intake.fetched == [case.referral_id]


def test_an_advocate_at_their_cap_or_inactive_cannot_accept_and_with_nobody_with_room_the_accept_is_refused():
    sender, receiver, case, full = two_charities(receiver_caseload=1)
    with receiver.uow:  # `full` takes their one place
        receiver.rules.casework.accept_offer(receiver.uow, receiver.offer().offer_id, actor="a", advocate_id=full.id)
    gone = receiver.advocate()
    with receiver.uow:
        receiver.rules.closure.deactivate_advocate(receiver.uow, gone.id)
    move = offer_handover(sender, case)
    deliver(sender, receiver, "case.handover_offered")
    with pytest.raises(domain.AdvocateUnavailable, match=r"maximum caseload \(1/1\)"), receiver.uow:
        receiver.rules.handover.accept(receiver.uow, move.id, actor="a", advocate_id=full.id)
    with pytest.raises(domain.AdvocateUnavailable, match="inactive"), receiver.uow:
        receiver.rules.handover.accept(receiver.uow, move.id, actor="a", advocate_id=gone.id)
    with pytest.raises(domain.NoAdvocateAvailable), receiver.uow:
        receiver.rules.handover.accept(receiver.uow, move.id, actor="a")
    assert receiver.uow.handovers.get(move.id).status == domain.HANDOVER_PENDING  # still to answer
    assert receiver.published(events.CaseHandoverAccepted) == []


def test_a_declined_handover_leaves_the_case_with_the_sender_and_its_advocate_and_a_late_accept_is_refused():
    sender, receiver, case, _ = two_charities()
    holder = case.advocate
    move = offer_handover(sender, case)
    deliver(sender, receiver, "case.handover_offered")
    with receiver.uow:
        receiver.rules.handover.decline(receiver.uow, move.id, actor="a", reason="no_single_sex_place", note="n")
    [declined] = receiver.published(events.CaseHandoverDeclined)
    assert declined.reason == "no_single_sex_place" and "n" not in msgspec.to_builtins(declined).values()
    with pytest.raises(domain.HandoverNotPending), receiver.uow:
        receiver.rules.handover.accept(receiver.uow, move.id, actor="a")

    deliver(receiver, sender, "case.handover_declined")
    assert case.status == domain.CASE_OPEN and case.advocate is holder and case.referral is not None
    assert (move.status, move.outcome) == (domain.TRANSITION_CANCELLED, "declined: no_single_sex_place")
    assert domain.HANDOVER_DECLINED_KIND in sender.uow.timeline.kinds(case.offer_id)
    assert not [e for e, _ in sender.uow.published if e.type == "case.handover"]


def test_an_unanswered_handover_lapses_at_its_deadline_on_both_sides_and_the_case_stays():
    sender, receiver, case, _ = two_charities()
    move = offer_handover(sender, case)
    deliver(sender, receiver, "case.handover_offered")
    for charity in (sender, receiver):
        charity.clock.advance(hours=71)
        assert ClockScheduler(charity.uow, charity.provider_id, charity.clock).tick().unanswered == 0
        charity.clock.advance(hours=2)
    with pytest.raises(domain.HandoverNotPending, match="too late"), receiver.uow:
        receiver.rules.handover.accept(receiver.uow, move.id, actor="a")  # past its deadline, before any tick
    assert ClockScheduler(sender.uow, PROVIDER, sender.clock).tick().unanswered == 1
    assert ClockScheduler(receiver.uow, OTHER, receiver.clock).tick().unanswered == 1
    assert (move.status, move.outcome) == (domain.TRANSITION_CANCELLED, domain.OUTCOME_UNANSWERED)
    assert case.status == domain.CASE_OPEN and domain.HANDOVER_UNANSWERED_KIND in sender.uow.timeline.kinds(
        case.offer_id
    )
    assert receiver.uow.handovers.get(move.id).status == domain.HANDOVER_EXPIRED
    assert receiver.uow.cases.rows == {}
    # An offered handover awaits its answer, not its planned date: it was never flagged missed.
    assert move.missed_at is None


def test_only_the_named_sender_may_offer_and_only_the_receiver_it_was_offered_to_may_answer():
    sender, receiver, case, _ = two_charities()
    move = offer_handover(sender, case)
    [offered] = sender.published(events.CaseHandoverOffered)
    with pytest.raises(PermanentError, match="may not publish"):  # another charity speaking in the sender's name
        receiver.consume(arriving(offered, publisher="advocacy-charity-x"))
    deliver(sender, receiver, "case.handover_offered")
    with receiver.uow:
        receiver.rules.handover.accept(receiver.uow, move.id, actor="a")
    [accepted] = receiver.published(events.CaseHandoverAccepted)
    with pytest.raises(PermanentError, match="may not publish"):
        sender.consume(arriving(accepted, publisher="advocacy-charity-x"))
    forged = msgspec.structs.replace(accepted, to_provider_id="charity-x")
    with pytest.raises(PermanentError, match="not offered to"):
        sender.consume(arriving(forged, publisher="advocacy-charity-x"))
    assert case.status == domain.CASE_OPEN


def test_a_case_handed_over_without_an_accepted_handover_is_refused():
    receiver = Instance(provider_id=OTHER)
    receiver.advocate()
    data = payload(
        "case.handover", referral_id="r-1", case_id="c-1", transition_id="t-1", from_provider_id=PROVIDER,
        to_provider_id=OTHER, handed_over_at="2026-03-01T09:00:00+00:00",
        summary={"is_child": False, "pathway": "nrm", "region": "london"}, nrm={},
    )  # fmt: skip
    with pytest.raises(PermanentError, match="without a handover"):
        receiver.consume(arriving(data, publisher=f"advocacy-{PROVIDER}"))
    assert receiver.uow.cases.rows == {}


# --- relocation -------------------------------------------------------------------------------------------


def relocate(charity: Instance, case, region: str, **fields):
    with charity.uow:
        move = charity.rules.transitions.plan(
            charity.uow, case, kind=domain.RELOCATION, planned_for=date(2026, 3, 10), actor="a", new_region=region,
            **fields,
        )  # fmt: skip
        charity.rules.transitions.update(charity.uow, case, move.id, actor="a", ticks=DONE)
        charity.rules.transitions.complete(charity.uow, case, move.id, actor="a")
    return move


def test_scotland_after_a_relocation_a_running_recovery_period_is_90_days_from_the_same_positive_rg():
    # nrm_policy.csv: recovery_period 30 days (England and Wales, from 2022-12-13); its Scotland row: at least
    # 90 days of support after a positive RG (from 2018-04-01). The move applies Scotland's row to the same RG.
    charity = Instance()
    case = charity.open_case()
    with charity.uow:
        charity.rules.nrm.record_decision(charity.uow, case, stage="rg", outcome="positive",
                                          decided_on=date(2026, 3, 1), actor="a")  # fmt: skip
    [before] = charity.uow.clocks.running(case.id, kinds=["recovery_period"])
    assert before.due_on == date(2026, 3, 31)
    relocate(charity, case, "scotland")
    assert charity.uow.nrm.record(case.id).region == "scotland"
    [after] = charity.uow.clocks.running(case.id, kinds=["recovery_period"])
    assert (after.starts_on, after.due_on) == (date(2026, 3, 1), date(2026, 5, 30))
    assert after.policy_version.startswith("recovery_period@scotland:")
    assert before.stopped_reason == "relocated to scotland: recomputed"
    assert domain.CASE_RELOCATED in charity.uow.timeline.kinds(case.offer_id)
    # A deadline (the authority's) is not moved; the advocate stays.
    assert case.advocate.id == charity.uow.cases.rows[case.id].advocate.id
    # Clocks started after the move use Scotland's rules too.
    with charity.uow:
        charity.rules.nrm.record_decision(charity.uow, case, stage="rg", outcome="positive",
                                          decided_on=date(2026, 3, 12), actor="a", on_reconsideration=True)  # fmt: skip
    assert max(c.due_on for c in charity.uow.clocks.running(case.id, kinds=["recovery_period"])) == date(2026, 6, 10)


def test_a_relocation_names_a_known_region_and_one_not_served_needs_the_provider_it_hands_over_to():
    charity = Instance()
    case = charity.open_case()
    with pytest.raises(domain.RegionUnknown) as unknown, charity.uow:
        charity.rules.transitions.plan(charity.uow, case, kind=domain.RELOCATION, planned_for=date(2026, 4, 1),
                                       actor="a", new_region="atlantis")  # fmt: skip
    assert unknown.value.field == "new_region"
    with pytest.raises(domain.RegionUnknown), charity.uow:
        charity.rules.transitions.plan(charity.uow, case, kind=domain.MOVE_ON, planned_for=date(2026, 4, 1),
                                       actor="a", new_region="wales")  # fmt: skip
    charity.rules.transitions.relocation.regions = frozenset({"london", "south_east"})
    with pytest.raises(domain.RegionNotServed) as unserved, charity.uow:
        charity.rules.transitions.plan(charity.uow, case, kind=domain.RELOCATION, planned_for=date(2026, 4, 1),
                                       actor="a", new_region="scotland")  # fmt: skip
    assert unserved.value.field == "receiving_provider_id"

    move = relocate(charity, case, "scotland", receiving_provider_id=OTHER)
    assert move.status == domain.TRANSITION_COMPLETED
    [handover] = [t for t in charity.uow.transitions.open_of(case.id) if t.kind == domain.PROVIDER_HANDOVER]
    assert handover.receiving_provider_id == OTHER and handover.planned_for == NOW.date()
    assert case.status == domain.CASE_OPEN  # the handover is planned, then offered like any other


def config(**env: str) -> AdvocacyConfig:
    return AdvocacyConfig.from_settings(settings_from_env({"PROVIDER_ID": "charity-a", **env}))


def test_handover_response_hours_and_provider_regions_are_validated():
    assert (config().handover_response_hours, config().regions) == (72.0, frozenset())
    assert config(HANDOVER_RESPONSE_HOURS="24", PROVIDER_REGIONS="wales, scotland").regions == {"wales", "scotland"}
    with pytest.raises(ConfigError, match="HANDOVER_RESPONSE_HOURS"):
        config(HANDOVER_RESPONSE_HOURS="0")
    with pytest.raises(ConfigError, match="PROVIDER_REGIONS: atlantis"):
        config(PROVIDER_REGIONS="wales,atlantis")
