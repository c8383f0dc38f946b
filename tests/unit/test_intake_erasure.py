"""The record of recipients and erasure at intake (issue 14 items 1 and 2), over the fake unit of work: every
recipient recorded, intake's copy erased in one unit with one request per recipient, who may ask, an erased
referral refused, and each recipient's confirmation (erasure.completed)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from test_intake_use_cases import POLICE, POLICY, submit

from contracts import events
from services.intake import consent, erasure, recipients, referrals
from services.intake.bootstrap import UseCases
from services.intake.domain import ReferralErased
from shared.auth import Principal
from shared.clock import utcnow
from shared.inbox import EventHandlers
from shared.messaging.errors import PermanentError
from shared.testing import referral_body
from support.events import answer, arriving, payload
from support.fake_intake import FakeIntakeUnitOfWork

pytestmark = pytest.mark.unit

DPO = Principal(sub="dpo-1", org="platform-ops", org_kind="ops", scopes=frozenset({"referrals:erase"}))
OTHER = Principal(sub="officer-9", org="kent-police", org_kind="police", scopes=frozenset({"referrals:write"}))
CANARY = "Canary-Erasure-7731"


@pytest.fixture
def uow() -> FakeIntakeUnitOfWork:
    fake = FakeIntakeUnitOfWork()
    for provider, capacity in (("provider-a", 9), ("provider-b", 5), ("provider-c", 1)):
        fake.provider(provider, capacity=capacity)
    return fake


@pytest.fixture
def scrubbed() -> list[str]:
    return []


@pytest.fixture
def use(uow, scrubbed) -> UseCases:
    return UseCases.over(uow, POLICY, after_erasure=lambda: scrubbed.append("files"))


def deliver(use: UseCases, event) -> None:
    EventHandlers("intake", use.units, use.handlers, trusted={"guest"})(event)


def handed_over(uow: FakeIntakeUnitOfWork, use: UseCases):
    """provider-a declined it, provider-b took it and handed the case over to provider-c."""
    body = referral_body()
    body["subject"]["given_name"] = CANARY
    referral, _ = submit(use, body)
    first = uow.offers.of(referral.id)[0]
    deliver(use, answer("offer.declined", referral.id, first.id, reason="no_capacity"))
    second = uow.offers.pending_for(referral.id)[0]
    deliver(use, answer("offer.accepted", referral.id, second.id, provider="provider-b"))
    handover = payload(
        "case.handed_over",
        referral_id=referral.id,
        case_id="case-1",
        from_provider_id="provider-b",
        to_provider_id="provider-c",
    )
    deliver(use, arriving(handover, publisher="advocacy-provider-b"))
    uow.published.clear()
    return referral


def test_every_recipient_is_recorded_with_its_purpose_notifications_once(uow, use):
    referral = handed_over(uow, use)
    disclosed = [(d.recipient_org, d.recipient_kind, d.purpose) for d in uow.disclosures.of(referral.id)]
    assert disclosed == [
        ("provider-a", "provider", "offer_summary"),
        ("notifications", "notifications", "referral_events"),  # once, however many events it was sent
        ("provider-b", "provider", "offer_summary"),
        ("provider-c", "provider", "handover"),
    ]
    assert [r.recipient for r in recipients.recipients_of(uow, referral)] == [
        "provider.provider-a",
        "provider.provider-b",
        "provider.provider-c",
        "notifications",
    ]


def test_an_erasure_erases_intakes_copy_and_asks_each_recipient_in_one_unit(uow, use, scrubbed):
    referral = handed_over(uow, use)
    done = erasure.request_erasure(
        use.units, POLICE, referral.id, "Art. 17 request of 1 Dec", after_commit=scrubbed.clear
    )
    assert referral.body == {} and referral.advocate is None and referral.erased_at is not None
    assert CANARY not in repr(vars(referral)) and referral.external_reference == f"erased-{referral.id}"
    assert {r.obtained_by for r in uow.consents.of(referral.id)} == {"erased"}
    assert uow.erasures.forgotten == [referral.id]
    assert uow.routing_keys() == [
        "referral.erasure_requested.provider.provider-a",
        "referral.erasure_requested.provider.provider-b",
        "referral.erasure_requested.provider.provider-c",
        "referral.erasure_requested.notifications",
    ]
    assert {e.erasure_id for e in uow.events(events.ReferralErasureRequested)} == {done.id}
    assert "Art. 17" not in repr(uow.published)  # the reason stays in intake's table
    view = erasure.erasure_view(done, now=utcnow(), ack=timedelta(hours=24))
    assert (view["status"], view["requested_by"], view["reason"]) == (
        "pending",
        "met-police",
        "Art. 17 request of 1 Dec",
    )
    assert {r["recipient"]: (r["kind"], r["confirmed_at"], r["overdue"]) for r in view["recipients"]} == {
        "provider.provider-a": ("provider", None, False),
        "provider.provider-b": ("provider", None, False),
        "provider.provider-c": ("provider", None, False),
        "notifications": ("notifications", None, False),
    }
    assert {"recipient": "intake", "record": "referral_routing", "because": "statistics"} in view["kept"]
    with pytest.raises(erasure.ErasureAlreadyRequested):
        erasure.request_erasure(use.units, DPO, referral.id, "again")


def test_the_referring_org_or_a_dpo_may_erase_nobody_else(uow, use, scrubbed):
    referral, _ = submit(use)
    for refused in (OTHER, Principal("x", "platform-ops", "ops", frozenset({"referrals:read"}))):
        with pytest.raises(erasure.ErasureNotFound):
            erasure.request_erasure(use.units, refused, referral.id, "no")
    with pytest.raises(erasure.ErasureNotFound):
        erasure.erasure_of(use.units, DPO, referral.id)  # none requested yet
    erasure.request_erasure(use.units, DPO, referral.id, "DPO decision", after_commit=use.after_erasure)
    assert scrubbed == ["files"]
    assert erasure.erasure_of(use.units, POLICE, referral.id).requested_by == "platform-ops"
    with pytest.raises(erasure.ErasureNotFound):
        erasure.erasure_of(use.units, OTHER, referral.id)


def test_an_erased_referral_is_gone_and_later_events_change_nothing(uow, use):
    referral, _ = submit(use)
    (offer,) = uow.offers.of(referral.id)
    erasure.request_erasure(use.units, POLICE, referral.id, "erase")
    assert offer.status == "withdrawn"
    with pytest.raises(ReferralErased):
        referrals.read(use.units, POLICE, referral.id)
    with pytest.raises(referrals.NotFound):  # 404 for anyone who never knew of it
        referrals.read(use.units, OTHER, referral.id)
    with pytest.raises(ReferralErased):
        referrals.withdraw(use.units, POLICE, referral.id)
    new = consent.NewConsent(purpose="advocacy", given=False, obtained_at=utcnow(), obtained_by="met-police")
    with pytest.raises(ReferralErased):
        consent.record_by_referrer(use.units, POLICE, referral.id, new)
    uow.published.clear()
    deliver(use, answer("offer.accepted", referral.id, offer.id))  # answered before it heard of the erasure
    assert referral.advocate is None and referral.status == "offered" and uow.published == []


def confirmation(referral_id: str, erasure_id: str, provider: str | None, **data):
    recipient = events.provider_recipient(provider) if provider else "notifications"
    fields = {"recipient": recipient, "erased_at": utcnow().isoformat(), "provider_id": provider, **data}
    done = payload("erasure.completed", referral_id=referral_id, erasure_id=erasure_id, **fields)
    return arriving(done, publisher=f"advocacy-{provider}" if provider else "guest")


def test_each_recipient_confirms_as_itself_and_the_erasure_completes_with_the_last(uow, use):
    referral = handed_over(uow, use)
    done = erasure.request_erasure(use.units, POLICE, referral.id, "erase")
    kept = [{"record": "case_outcome", "because": "statistics"}]
    deliver(use, confirmation(referral.id, done.id, "provider-a"))
    deliver(use, confirmation(referral.id, done.id, "provider-b", kept=kept))
    deliver(use, confirmation(referral.id, done.id, "provider-b"))  # a repeat: nothing changes
    deliver(use, confirmation(referral.id, done.id, None))
    later = utcnow() + timedelta(hours=25)
    view = erasure.erasure_view(done, now=later, ack=timedelta(hours=24))
    assert view["status"] == "pending"
    overdue = {r["recipient"]: r["overdue"] for r in view["recipients"]}
    assert overdue == {
        "provider.provider-a": False,
        "provider.provider-b": False,
        "provider.provider-c": True,
        "notifications": False,
    }
    assert {"recipient": "provider.provider-b", "record": "case_outcome", "because": "statistics"} in view["kept"]
    deliver(use, confirmation(referral.id, done.id, "provider-c"))
    assert erasure.erasure_view(done, now=later, ack=timedelta(hours=24))["status"] == "complete"
    assert done.completed_at is not None


def test_a_confirmation_intake_did_not_ask_for_is_parked(uow, use):
    referral = handed_over(uow, use)
    done = erasure.request_erasure(use.units, POLICE, referral.id, "erase")
    uow.provider("provider-d")
    refused = [
        confirmation(referral.id, "00000000-0000-4000-8000-000000000000", "provider-a"),  # unknown erasure
        confirmation(referral.id, done.id, "provider-d"),  # never a recipient
        confirmation(referral.id, done.id, "provider-a", recipient="provider.provider-b"),  # for another
        confirmation(referral.id, done.id, None, recipient="provider.provider-a"),  # notifications as a charity
    ]
    for event in refused:
        with pytest.raises(PermanentError):
            deliver(use, event)
    assert all(r.confirmed_at is None for r in done.recipients)
