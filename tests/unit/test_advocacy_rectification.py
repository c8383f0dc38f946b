"""advocacy's referral.rectified handler (issue 14 item 3) over the fake unit of work and a fake intake: the
referral is fetched again (purpose rectification), every copy held here is replaced, open or closed, its
search tokens rewritten and the timeline names the sections; intake down is transient."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from contracts import events
from services.advocacy import domain
from services.advocacy.bootstrap import assemble
from services.advocacy.casework.rectification import REFERRAL_RECTIFIED
from services.advocacy.continuity.policy import load_policy
from services.advocacy.continuity.wall_clock import FixedClock
from services.advocacy.handlers import subscriptions
from shared.inbox import EventHandlers
from shared.messaging.errors import DependencyUnavailable
from support.events import arriving, payload
from support.fake_advocacy import FakeAdvocacyUnitOfWork

pytestmark = pytest.mark.unit

PROVIDER = "charity-r"
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class FakeIntake:
    """intake's GET /v1/referrals/{id}: the referral under the name it now holds, each fetch and its purpose kept."""

    def __init__(self) -> None:
        self.given_name = "Kalox"
        self.fetched: list[tuple[str, str | None]] = []
        self.down = False

    def fetch_referral(self, referral_id: str, *, purpose: str | None = None) -> dict:
        if self.down:
            raise DependencyUnavailable("intake", "answered 503")
        self.fetched.append((referral_id, purpose))
        subject = {"given_name": self.given_name, "family_name": "Synthetic-Mizux", "date_of_birth": "1996-05-01"}
        return {"id": referral_id, "status": "allocated", "location": {"region": "london"}, "subject": subject}


@pytest.fixture
def charity():
    rules = assemble(PROVIDER, load_policy(), FixedClock(NOW))
    uow = FakeAdvocacyUnitOfWork(PROVIDER)
    intake = FakeIntake()
    consume = EventHandlers(
        f"advocacy.{PROVIDER}", uow, subscriptions(rules, intake, auto_accept=False), trusted={"guest"}
    )
    with uow:
        rules.casework.create_advocate(
            uow, name="Advocate Synthetic", email="a@r.example", languages=["sq"], max_caseload=3
        )
    offered = payload(
        "referral.offered",
        referral_id=str(uuid.uuid4()),
        offer_id=str(uuid.uuid4()),
        provider_id=PROVIDER,
        org_id="met-police",
        offered_at="2026-03-02T08:00:00+00:00",
        respond_by="2026-03-03T08:00:00+00:00",
        summary={"is_child": False, "pathway": "nrm", "region": "london", "languages": ["sq"]},
    )
    consume(arriving(offered))
    with uow:
        case = rules.casework.accept_offer(uow, offered.offer_id, actor="advocate:test")
    ids = {"referral_id": case.referral_id, "offer_id": case.offer_id, "provider_id": PROVIDER}
    consume(arriving(payload("allocation.confirmed", **ids, case_id=case.id)))
    assert case.status == domain.CASE_OPEN
    return rules, uow, intake, consume, case


def rectified(case, sections=("subject",)):
    recipient = events.provider_recipient(PROVIDER)
    data = {"referral_id": case.referral_id, "recipient": recipient, "rectified_at": "2026-03-02T10:00:00+00:00"}
    return arriving(payload("referral.rectified", **data, sections=list(sections)))


def test_a_rectified_name_replaces_the_copy_and_its_search_tokens_and_the_timeline_says_which_sections(charity):
    rules, uow, intake, consume, case = charity
    intake.given_name = "Corrected"
    consume(rectified(case, ("subject", "needs")))
    assert intake.fetched[-1] == (case.referral_id, "rectification")
    assert case.referral["subject"]["given_name"] == "Corrected"
    with uow:
        assert rules.casework.index.find(uow, "Corrected Synthetic-Mizux") == [case.id]
        assert rules.casework.index.find(uow, "Kalox") == []
    entry = uow.timeline.of_offer(case.offer_id)[-1]
    assert entry.kind == REFERRAL_RECTIFIED and entry.detail.endswith("subject, needs")
    assert "Corrected" not in entry.detail


def test_a_closed_cases_copy_is_corrected_too(charity):
    _, uow, intake, consume, case = charity
    case.status = domain.CASE_CLOSED
    intake.given_name = "Corrected"
    consume(rectified(case))
    assert case.referral["subject"]["given_name"] == "Corrected"


def test_a_referral_without_a_copy_here_is_not_fetched(charity):
    _, _, intake, consume, case = charity
    case.referral = None
    fetched = len(intake.fetched)
    consume(rectified(case))
    assert len(intake.fetched) == fetched


def test_intake_down_is_transient_and_nothing_changes(charity):
    _, uow, intake, consume, case = charity
    intake.down, intake.given_name = True, "Corrected"
    with pytest.raises(DependencyUnavailable):
        consume(rectified(case))
    assert case.referral["subject"]["given_name"] == "Kalox"
    assert uow.timeline.kinds(case.offer_id)[-1] != REFERRAL_RECTIFIED
