"""intake's use cases over the fake unit of work: submit, read, withdraw, offering by hand, expiry. No database;
each test asserts on the records as left and the events as staged (through the real catalogue)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from contracts import events
from services.intake import referrals
from services.intake.bootstrap import UseCases
from services.intake.domain import CannotOffer, InvalidState, ResponsePolicy
from services.intake.offering import UnknownProvider
from services.intake.schemas import ReferralInSchema
from shared.auth import Principal
from shared.clock import utcnow
from shared.testing import referral_body
from support.fake_intake import FakeIntakeUnitOfWork

pytestmark = pytest.mark.unit

POLICE = Principal(sub="officer-1", org="met-police", org_kind="police", scopes=frozenset({"referrals:write"}))
COORDINATOR = Principal(sub="coord-1", org="platform", org_kind="coordinator", scopes=frozenset())
POLICY = ResponsePolicy(default_hours=24, by_region={"london": 12})


@pytest.fixture
def uow() -> FakeIntakeUnitOfWork:
    return FakeIntakeUnitOfWork()


@pytest.fixture
def use(uow) -> UseCases:
    return UseCases.over(uow, POLICY)


def submit(use: UseCases, raw: dict | None = None, org: str = POLICE.org, org_kind: str = POLICE.org_kind):
    raw = raw if raw is not None else referral_body()
    submission = referrals.Submission(org, ReferralInSchema().load(raw), referrals.request_hash(raw), org_kind)
    return referrals.submit(use.units, use.offering, submission)


def types(uow: FakeIntakeUnitOfWork) -> list[str]:
    return [event.type for event, _ in uow.published]


def test_a_referral_is_stored_offered_to_the_best_provider_and_both_events_staged(uow, use):
    uow.provider("few-places", capacity=2)
    uow.provider("speaks-sq", capacity=1, languages=["sq"])
    referral, created = submit(use)
    assert created and referral.status == "offered" and referral.pathway == "nrm"
    (offer,) = uow.offers.of(referral.id)
    assert (offer.provider_id, offer.status, offer.offered_by) == ("speaks-sq", "pending", "routing")
    assert offer.respond_by == offer.offered_at + timedelta(hours=12)  # London's own deadline
    received, offered = uow.events()
    assert isinstance(received, events.ReferralReceived) and received.status == "received"  # as it arrived
    assert isinstance(offered, events.ReferralOffered) and offered.offer_id == offer.id
    assert offered.summary.languages == ["sq", "en"] and offered.summary.region == "london"
    assert uow.routing_keys() == ["referral.received", "referral.offered.speaks-sq"]
    assert uow.commits == 1


def test_with_no_eligible_provider_a_referral_is_escalated_for_a_coordinator(uow, use):
    uow.provider("wales-only", regions=["wales"])
    referral, _ = submit(use)
    assert referral.status == "escalated" and uow.offers.of(referral.id) == []
    assert [(e.referral_id, e.reason) for e in uow.escalations.rows] == [(referral.id, "no_eligible_provider")]
    assert types(uow) == ["referral.received", "referral.escalated"]
    assert uow.events(events.ReferralEscalated)[0].status == "escalated"


def test_replaying_the_same_body_returns_the_first_referral_and_stages_nothing_more(uow, use):
    uow.provider("demo")
    raw = referral_body()
    first, created = submit(use, raw)
    again, created_again = submit(use, dict(raw))
    assert (created, created_again) == (True, False) and again is first
    assert len(uow.referrals.rows) == 1 and len(uow.offers.rows) == 1
    assert uow.routing_keys() == ["referral.received", "referral.offered.demo"]


def test_the_same_reference_with_another_body_is_a_conflict_and_changes_nothing(uow, use):
    uow.provider("demo")
    raw = referral_body()
    submit(use, raw)
    with pytest.raises(referrals.ReferralConflict):
        submit(use, {**raw, "needs": ["health"]})
    assert len(uow.referrals.rows) == 1 and len(uow.offers.rows) == 1
    assert uow.rollbacks == 1 and len(uow.published) == 2


def test_another_organisation_may_use_the_same_reference(uow, use):
    raw = referral_body()
    submit(use, raw)
    _, created = submit(use, raw, org="other-force")
    assert created and len(uow.referrals.rows) == 2


def test_a_person_in_immediate_danger_is_escalated_at_once_while_the_offer_goes_out(uow, use):
    uow.provider("demo")
    referral, _ = submit(use, referral_body(risk={"immediate_danger": True, "re_trafficking_risk": "high"}))
    assert referral.status == "offered" and uow.offers.pending_for(referral.id)
    assert [e.reason for e in uow.escalations.rows] == ["immediate_danger"]
    assert types(uow) == ["referral.received", "referral.offered", "referral.escalated"]
    assert uow.events(events.ReferralEscalated)[0].reason == "immediate_danger"


def test_in_immediate_danger_with_nobody_to_offer_it_is_escalated_once(uow, use):
    referral, _ = submit(use, referral_body(risk={"immediate_danger": True}))
    assert referral.status == "escalated"
    assert [e.reason for e in uow.escalations.rows] == ["no_eligible_provider"]
    assert types(uow) == ["referral.received", "referral.escalated"]


def test_an_adult_without_nrm_or_advocacy_consent_is_a_duty_to_notify_recorded_without_identifiers(uow, use):
    uow.provider("demo")
    consent = {"nrm_referral": False, "advocacy": False, "data_sharing": False, "obtained_at": utcnow().isoformat()}
    referral, _ = submit(use, referral_body(consent=consent))
    assert (referral.status, referral.pathway) == ("recorded", "duty_to_notify")
    assert uow.offers.rows == {} and uow.escalations.rows == []
    subject = referral.body["subject"]
    assert not {"given_name", "family_name", "aliases", "date_of_birth", "safe_contact"} & set(subject)
    assert "narrative" not in referral.body and "notes" not in referral.body["risk"]
    (received,) = uow.events()
    assert (received.status, received.pathway, received.is_child) == ("recorded", "duty_to_notify", False)


def test_a_child_is_referred_into_the_nrm_and_routed_without_consent(uow, use):
    uow.provider("children", serves=["child"])
    referral, _ = submit(use, referral_body(child=True))
    assert (referral.status, referral.pathway, referral.is_child) == ("offered", "nrm", True)
    assert uow.routing_keys()[-1] == "referral.offered.children"


def test_a_place_held_for_a_pending_offer_is_not_offered_again(uow, use):
    uow.provider("one-place", capacity=1)
    first, _ = submit(use)
    second, _ = submit(use)
    assert (first.status, second.status) == ("offered", "escalated")


def test_withdrawing_cancels_the_pending_offer_and_tells_its_provider_alone(uow, use):
    uow.provider("demo")
    referral, _ = submit(use)
    (offer,) = uow.offers.of(referral.id)
    withdrawn = referrals.withdraw(use.units, POLICE, referral.id)
    assert withdrawn.status == "withdrawn" and offer.status == "withdrawn" and offer.responded_at
    news = uow.events(events.ReferralWithdrawn)[0]
    assert (news.status, news.provider_id) == ("withdrawn", "demo")
    assert uow.events(events.OfferWithdrawn) == [
        events.OfferWithdrawn(referral_id=referral.id, offer_id=offer.id, provider_id="demo")
    ]
    assert uow.routing_keys()[-2:] == ["referral.withdrawn", "offer.withdrawn.demo"]
    assert uow.referrals.locked == [referral.id]


def test_an_allocated_referral_withdrawn_tells_the_provider_holding_the_case(uow, use):
    uow.provider("demo")
    referral, _ = submit(use)
    (offer,) = uow.offers.of(referral.id)
    referral.accept(offer, case_id="case-1", advocate={"name": "A", "email": "a@demo.example"}, at=utcnow())
    referrals.withdraw(use.units, POLICE, referral.id)
    assert offer.status == "accepted"  # the answer stands; the case is closed by its provider
    assert uow.events(events.OfferWithdrawn)[-1].offer_id == offer.id


def test_a_withdrawn_referral_cannot_be_withdrawn_again_and_another_org_cannot_see_it(uow, use):
    referral, _ = submit(use)
    referrals.withdraw(use.units, POLICE, referral.id)
    staged = len(uow.published)
    with pytest.raises(InvalidState, match="withdrawn cannot be withdrawn"):
        referrals.withdraw(use.units, POLICE, referral.id)
    other = Principal(sub="x", org="other-force", org_kind="police", scopes=frozenset())
    with pytest.raises(referrals.NotFound):
        referrals.withdraw(use.units, other, referral.id)
    assert len(uow.published) == staged


def test_a_coordinator_offers_an_escalated_referral_by_hand_and_resolves_its_escalation(uow, use):
    referral, _ = submit(use)
    assert referral.status == "escalated"
    uow.provider("agreed-by-phone", regions=["wales"])  # not eligible by routing; a coordinator may choose it
    offer = referrals.offer_by_hand(use.units, use.offering, COORDINATOR, referral.id, "agreed-by-phone")
    assert (offer.provider_id, offer.offered_by, referral.status) == ("agreed-by-phone", "coord-1", "offered")
    (escalation,) = uow.escalations.rows
    assert escalation.resolved_by == "coord-1" and escalation.resolved_at
    assert uow.routing_keys()[-1] == "referral.offered.agreed-by-phone"


def test_an_offer_by_hand_is_refused_while_one_waits_or_to_a_provider_who_cannot_take_it(uow, use):
    uow.provider("demo")
    uow.provider("children-only", serves=["child"])
    referral, _ = submit(use)
    with pytest.raises(UnknownProvider):
        referrals.offer_by_hand(use.units, use.offering, COORDINATOR, referral.id, "nobody")
    with pytest.raises(CannotOffer, match="already has an offer waiting"):
        referrals.offer_by_hand(use.units, use.offering, COORDINATOR, referral.id, "children-only")
    uow.offers.of(referral.id)[0].close("declined", utcnow())
    with pytest.raises(CannotOffer, match="does not serve adults"):
        referrals.offer_by_hand(use.units, use.offering, COORDINATOR, referral.id, "children-only")
    referrals.withdraw(use.units, POLICE, referral.id)
    with pytest.raises(CannotOffer, match="withdrawn cannot be offered"):
        referrals.offer_by_hand(use.units, use.offering, COORDINATOR, referral.id, "demo")
    assert len(uow.offers.rows) == 1


def test_reading_as_the_allocated_provider_discloses_the_body_and_logs_it(uow, use):
    uow.provider("demo")
    referral, _ = submit(use)
    provider = Principal(sub="adv-1", org="demo", org_kind="provider", scopes=frozenset())
    with pytest.raises(referrals.NotFound):  # offered is not allocated: never a 403 that says it exists
        referrals.read(use.units, provider, referral.id)
    offer = uow.offers.of(referral.id)[0]
    referral.accept(offer, case_id="case-1", advocate={"name": "A", "email": "a@demo.example"}, at=utcnow())
    _, offers, shown = referrals.read(use.units, provider, referral.id)
    assert shown and offers == [offer]
    *_, disclosure = uow.disclosures.rows  # after the offer summary and the events to notifications
    assert (disclosure.recipient_org, disclosure.recipient_sub, disclosure.purpose) == ("demo", "adv-1", "case_opening")
    assert referrals.read(use.units, COORDINATOR, referral.id)[2] is False  # progress, not the body
    assert [d.purpose for d in uow.disclosures.rows] == ["offer_summary", "referral_events", "case_opening"]


def overdue(uow: FakeIntakeUnitOfWork, referral_id: str):
    (offer,) = uow.offers.pending_for(referral_id)
    offer.respond_by = utcnow() - timedelta(seconds=1)
    return offer


def test_an_offer_past_its_deadline_expires_and_the_referral_goes_to_the_next_provider(uow, use):
    uow.provider("first", capacity=9)
    uow.provider("second", capacity=3)
    referral, _ = submit(use)
    expired = overdue(uow, referral.id)
    assert use.expiry.expire_due(utcnow()) == 1
    assert expired.status == "expired" and expired.responded_at
    (pending,) = uow.offers.pending_for(referral.id)
    assert pending.provider_id == "second" and referral.status == "offered"
    assert uow.routing_keys()[-2:] == ["offer.expired.first", "referral.offered.second"]
    assert use.expiry.expire_due(utcnow()) == 0  # once only


def test_when_the_last_provider_lets_its_offer_expire_the_referral_is_escalated(uow, use):
    uow.provider("only")
    referral, _ = submit(use)
    overdue(uow, referral.id)
    assert use.expiry.expire_due(utcnow()) == 1
    assert referral.status == "escalated"
    assert uow.events(events.ReferralEscalated)[-1].reason == "none_accepted"


def test_an_offer_not_yet_due_or_whose_referral_another_worker_holds_is_left_alone(uow, use):
    uow.provider("demo", capacity=9)
    waiting, _ = submit(use)
    held, _ = submit(use)
    held_offer = overdue(uow, held.id)
    uow.referrals.busy.add(held.id)
    staged = len(uow.published)
    assert use.expiry.expire_due(utcnow()) == 0
    assert held_offer.status == "pending" and uow.offers.pending_for(waiting.id)[0].status == "pending"
    assert len(uow.published) == staged
