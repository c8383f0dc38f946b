"""An advocate's day on a case (issue 13 items 2-3), over the fake unit of work: the contact log, notes, risk
flags and the no-contact rule, with their events through the real catalogue and time on a fixed wall clock."""

from __future__ import annotations

import json
from datetime import date, timedelta

import msgspec
import pytest
from test_advocacy_use_cases import NOW, Instance

from contracts import events
from services.advocacy import domain
from services.advocacy.casework.contacts import CareInvalid
from services.advocacy.continuity.scheduler import ClockScheduler

NOTE = "Synthetic note: says her cousin's friend keeps calling."


def open_case(charity: Instance, *, child: bool = False, opened_days_ago: float = 0):
    case = charity.open_case()
    case.referral = {**(case.referral or {}), "is_child": child}
    case.opened_at = NOW - timedelta(days=opened_days_ago)
    return case


def contact(charity: Instance, case, *, outcome: str = "reached", days_ago: float = 0, note: str | None = None):
    with charity.uow:
        return charity.rules.contacts.log(
            charity.uow,
            case,
            at=charity.clock.now() - timedelta(days=days_ago),
            method="phone",
            outcome=outcome,
            interpreter_used=True,
            note=note,
            actor="advocate:test",
        )


def tick(charity: Instance) -> int:
    return (
        ClockScheduler(charity.uow, charity.provider_id, charity.clock, contacts=charity.rules.contacts)
        .tick()
        .contact_overdue
    )


def test_an_adult_nobody_has_reached_for_more_than_14_days_is_announced_once():
    charity = Instance()
    case = open_case(charity, opened_days_ago=14)
    assert tick(charity) == 0  # exactly 14 days: not yet longer than the rule

    charity.clock.advance(hours=1)
    assert tick(charity) == 1
    assert tick(charity) == 0  # the same episode: once

    [overdue] = charity.published(events.CaseContactOverdue)
    assert msgspec.to_builtins(overdue) | {"local_authority_org_id": None} == {
        "referral_id": case.referral_id,
        "case_id": case.id,
        "provider_id": charity.provider_id,
        "is_child": False,
        "counted_from": "2026-02-16",
        "due_on": "2026-03-02",
        "policy_version": "no_contact_adult@*:2009-04-01",
        "local_authority_org_id": None,
    }
    assert "contact_overdue" in charity.uow.timeline.kinds(case.offer_id)


def test_a_childs_rule_is_7_days():
    charity = Instance()
    child = open_case(charity, child=True, opened_days_ago=8)
    adult = open_case(charity, opened_days_ago=8)
    assert tick(charity) == 1
    [overdue] = charity.published(events.CaseContactOverdue)
    assert overdue.case_id == child.id and overdue.is_child and overdue.policy_version.startswith("no_contact_child")
    assert adult.contact_overdue_at is None


def test_a_reached_contact_ends_the_episode_and_the_next_lapse_is_a_new_one():
    charity = Instance()
    case = open_case(charity, opened_days_ago=20)
    contact(charity, case, outcome="no_answer", days_ago=1)  # an attempt is not a contact
    assert tick(charity) == 1

    contact(charity, case, outcome="reached")
    assert case.contact_overdue_at is None and case.last_reached_at == NOW
    charity.clock.advance(days=14, hours=1)
    assert tick(charity) == 1
    assert [e.counted_from for e in charity.published(events.CaseContactOverdue)] == ["2026-02-10", "2026-03-02"]


def test_a_reached_contact_dated_too_long_ago_does_not_end_the_episode():
    charity = Instance()
    case = open_case(charity, opened_days_ago=30)
    assert tick(charity) == 1
    contact(charity, case, days_ago=20)  # logged late: still nobody reached for 20 days
    assert case.contact_overdue_at is not None
    assert tick(charity) == 0


def test_a_closed_case_is_not_announced_and_takes_no_contact_note_or_flag():
    charity = Instance()
    case = open_case(charity, opened_days_ago=30)
    with charity.uow:
        charity.rules.closure.close(charity.uow, case, outcome="moved_on", actor="a")
    assert tick(charity) == 0
    rules, uow = charity.rules, charity.uow
    writes = [
        lambda: contact(charity, case),
        lambda: rules.notes.add(uow, case, text="Synthetic.", actor="a"),
        lambda: rules.risks.raise_flag(uow, case, kind="missing", level="high", review_on=NOW.date(), actor="a"),
    ]
    for write in writes:
        with pytest.raises(domain.CaseNotOpen):
            write()


def test_contact_in_the_future_is_refused_naming_at():
    charity = Instance()
    case = open_case(charity)
    with pytest.raises(CareInvalid) as refused:
        contact(charity, case, days_ago=-1)
    assert refused.value.field == "at"


def test_a_note_is_kept_and_the_timeline_says_only_who_added_it():
    charity = Instance()
    case = open_case(charity)
    published = len(charity.uow.published)
    with charity.uow:
        note = charity.rules.notes.add(charity.uow, case, text=NOTE, actor="advocate:test")
    assert charity.uow.notes.of_case(case.id) == [note] and note.text == NOTE
    [entry] = [e for e in charity.uow.timeline.of_offer(case.offer_id) if e.kind == "note_added"]
    assert (entry.actor, entry.detail) == ("advocate:test", "")
    assert len(charity.uow.published) == published  # no event
    with pytest.raises(CareInvalid) as refused:
        charity.rules.notes.add(charity.uow, case, text="   ", actor="a")
    assert refused.value.field == "text"


def test_a_high_risk_flag_raises_case_risk_raised_at_once_with_ids_kind_and_level_only():
    charity = Instance()
    case = open_case(charity)
    with charity.uow:
        low = charity.rules.risks.raise_flag(
            charity.uow, case, kind="self_harm", level="low", review_on=date(2026, 4, 1), actor="a"
        )
        high = charity.rules.risks.raise_flag(
            charity.uow, case, kind="exploiters_nearby", level="high", review_on=NOW.date(), actor="a", note=NOTE
        )
    assert {r.id for r in charity.uow.risks.of_case(case.id)} == {low.id, high.id}
    [raised] = charity.published(events.CaseRiskRaised)
    assert (raised.risk_id, raised.kind, raised.level, raised.case_id) == (
        high.id,
        "exploiters_nearby",
        "high",
        case.id,
    )
    everything = json.dumps([msgspec.to_builtins(e) for e in charity.uow.events()])
    details = " ".join(e.detail for e in charity.uow.timeline.of_offer(case.offer_id))
    assert "cousin" not in everything and "cousin" not in details


def test_a_risk_to_review_in_the_past_is_refused_naming_review_on():
    charity = Instance()
    case = open_case(charity)
    with pytest.raises(CareInvalid) as refused:
        charity.rules.risks.raise_flag(
            charity.uow, case, kind="missing", level="high", review_on=NOW.date() - timedelta(days=1), actor="a"
        )
    assert refused.value.field == "review_on"
    assert charity.published(events.CaseRiskRaised) == []
