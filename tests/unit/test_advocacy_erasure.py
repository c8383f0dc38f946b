"""Erasure at a charity (issue 14 item 2), over the fake unit of work: `referral.erasure_requested` erases the
provider's copy in one unit, closes an open case without news to notifications, and answers
`erasure.completed` in the provider's voice with what it keeps; a repeat request answers again."""

from __future__ import annotations

import uuid

import pytest
from test_advocacy_care import NOTE, contact
from test_advocacy_use_cases import PROVIDER, Instance

from contracts import events
from services.advocacy import domain
from services.advocacy.models import Handover
from support.events import arriving, payload

pytestmark = pytest.mark.unit


def erasure_requested(referral_id: str, erasure_id: str | None = None):
    data = {
        "referral_id": referral_id,
        "erasure_id": erasure_id or str(uuid.uuid4()),
        "recipient": events.provider_recipient(PROVIDER),
        "requested_at": "2026-03-02T09:00:00+00:00",
    }
    return arriving(payload("referral.erasure_requested", **data))


def test_an_open_case_is_erased_closed_silently_and_erasure_completed_names_what_is_kept():
    charity = Instance()
    case = charity.open_case()
    contact(charity, case, note=NOTE)
    with charity.uow:
        charity.rules.notes.add(charity.uow, case, text=NOTE, actor="advocate:test")
    charity.uow.search.replace(case.id, {"digest-a"})
    before = len(charity.uow.published)

    charity.consume(erasure_requested(case.referral_id, erasure_id="erasure-1"))

    uow = charity.uow
    assert case.status == domain.CASE_CLOSED and case.referral is None
    assert case.offer.summary == {} and all(e.detail == "" for e in uow.timeline.of_offer(case.offer_id))
    assert not uow.contacts.of_case(case.id) and not uow.notes.of_case(case.id)
    assert case.id not in uow.search.tokens
    assert all(c.stopped_at is not None for c in uow.clocks.of_case(case.id))
    assert all(t.status == domain.TRANSITION_CANCELLED for t in uow.transitions.of_case(case.id))
    assert all((r.nrm_reference is None) for r in uow.nrm.records.values())
    assert {case.referral_id, case.id} <= uow.erasures.forgotten and uow.scrub_after_commit
    staged = [e.data for e, _ in uow.published[before:]]
    assert not [d for d in staged if isinstance(d, events.CaseNews)]  # no news to notifications
    (done,) = [d for d in staged if isinstance(d, events.ErasureCompleted)]
    assert (done.erasure_id, done.provider_id, done.recipient) == ("erasure-1", PROVIDER, f"provider.{PROVIDER}")
    assert {k.record for k in done.kept} == {"case_dates", "offer_outcomes", "case_timeline"}
    assert uow.routing_keys()[-1] == "erasure.completed"
    assert NOTE not in repr([vars(row) for row in (*uow.timeline.rows, case, case.offer)])

    charity.consume(erasure_requested(case.referral_id, erasure_id="erasure-2"))  # a repeat: answered again
    again = charity.published(events.ErasureCompleted)
    assert [d.erasure_id for d in again] == ["erasure-1", "erasure-2"] and again[0].kept == again[1].kept


def test_an_offer_only_or_a_referral_never_seen_is_confirmed_the_same_way():
    charity = Instance()
    charity.advocate()
    offer = charity.offer()
    charity.consume(erasure_requested(offer.referral_id))
    charity.consume(erasure_requested("referral-never-seen"))

    assert charity.uow.offers.get(offer.offer_id).summary == {}
    first, second = charity.published(events.ErasureCompleted)
    assert [k.record for k in first.kept] == ["offer_outcomes", "case_timeline"]
    assert (second.referral_id, second.kept) == ("referral-never-seen", [])


def test_a_charity_that_handed_the_case_over_erases_its_leftovers_and_a_handover_offer_too():
    charity = Instance()
    case = charity.open_case()
    case.status = domain.CASE_CLOSED  # handed over: what stays here is closed
    now = charity.clock.now()
    charity.uow.handovers.add(
        Handover(
            id="handover-1",
            provider_id=PROVIDER,
            from_provider_id="charity-v",
            referral_id=case.referral_id,
            from_case_id="case-v",
            status=domain.HANDOVER_DECLINED,
            summary={"languages": ["sq"]},
            offered_at=now,
            respond_by=now,
            decline_note="Synthetic decline note",
        )
    )

    charity.consume(erasure_requested(case.referral_id))

    handover = charity.uow.handovers.get("handover-1")
    assert case.referral is None and (handover.summary, handover.decline_note) == ({}, None)
    [done] = charity.published(events.ErasureCompleted)
    assert "case_dates" in {k.record for k in done.kept}
