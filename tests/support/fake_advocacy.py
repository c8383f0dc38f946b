"""advocacy's unit of work in memory, for unit tests of its use cases and handlers: no database.

Records are the service's own model objects, kept in dicts; the relationships the rules navigate (an offer's
case, a case's offer and advocate) are set when a row is added, as the database would resolve them. Staged
events go through the real catalogue (support.uow.FakeUnitOfWork).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import date, datetime

from services.advocacy import domain
from services.advocacy.continuity.deadlines import ANNOUNCED, BREACHABLE, nature_of
from services.advocacy.models import (
    Advocate,
    Case,
    CaseConsentRecord,
    CaseContact,
    CaseNote,
    Clock,
    Handover,
    NrmDecision,
    NrmReconsideration,
    NrmRecord,
    Offer,
    RiskFlag,
    TimelineEntry,
    Transition,
)
from services.advocacy.uow import (
    DUE_SOON,
    AdvocacyUnitOfWork,
    Advocates,
    CaseConsents,
    CaseContacts,
    CaseNotes,
    Cases,
    CaseSearch,
    Clocks,
    Erasures,
    Handovers,
    NrmRecords,
    NrmRow,
    Offers,
    RiskFlags,
    Timeline,
    Transitions,
)
from support.uow import FakeUnitOfWork


class FakeAdvocates(Advocates):
    def __init__(self) -> None:
        self.rows: dict[str, Advocate] = {}

    def get(self, advocate_id: str) -> Advocate | None:
        return self.rows.get(advocate_id)

    def by_email(self, email: str) -> Advocate | None:
        return next((a for a in self.rows.values() if a.email == email), None)

    def all(self, *, lock: bool = False) -> list[Advocate]:
        return sorted(self.rows.values(), key=lambda a: a.id)

    def add(self, advocate: Advocate) -> None:
        if self.by_email(advocate.email) is not None:
            raise AssertionError("the database's unique email would refuse this")
        self.rows[advocate.id] = advocate


class FakeOffers(Offers):
    def __init__(self) -> None:
        self.rows: dict[str, Offer] = {}

    def get(self, offer_id: str, *, lock: bool = False) -> Offer | None:
        return self.rows.get(offer_id)

    def of_referral(self, referral_id: str, *, lock: bool = False) -> list[Offer]:
        return sorted((o for o in self.rows.values() if o.referral_id == referral_id), key=lambda o: o.id)

    def add(self, offer: Offer) -> None:
        if offer.id in self.rows:
            raise AssertionError(f"offer {offer.id} exists: the primary key would refuse it")
        self.rows[offer.id] = offer


class FakeCases(Cases):
    def __init__(self, offers: FakeOffers) -> None:
        self.rows: dict[str, Case] = {}
        self._offers = offers

    def get(self, case_id: str) -> Case | None:
        return self.rows.get(case_id)

    def by_ids(self, ids: Iterable[str]) -> dict[str, Case]:
        return {i: self.rows[i] for i in set(ids) if i in self.rows}

    def handed_over(self, referral_id: str) -> Case | None:
        return next(
            (
                c
                for c in self.rows.values()
                if c.referral_id == referral_id
                and c.offer_id.startswith(domain.HANDOVER_OFFER_PREFIX)
                and c.status in domain.LIVE_CASE_STATUSES
            ),
            None,
        )

    def caseloads(self) -> dict[str, int]:
        loads: dict[str, int] = {}
        for case in self.rows.values():
            if case.status in domain.LIVE_CASE_STATUSES:
                loads[case.advocate.id] = loads.get(case.advocate.id, 0) + 1
        return loads

    def add(self, case: Case) -> None:
        if any(c.offer_id == case.offer_id for c in self.rows.values()):
            raise AssertionError(f"offer {case.offer_id} has a case: the unique offer_id would refuse another")
        case.offer = self._offers.rows[case.offer_id]  # and, by its backref, the offer's case
        case.advocate_id = case.advocate.id
        self.rows[case.id] = case

    def lock(self, case: Case) -> None:
        pass


class FakeTimeline(Timeline):
    def __init__(self) -> None:
        self.rows: list[TimelineEntry] = []
        self._seq = itertools.count(1)

    def add(self, entry: TimelineEntry) -> None:
        entry.seq = next(self._seq)
        self.rows.append(entry)

    def of_offer(self, offer_id: str) -> list[TimelineEntry]:
        return sorted((e for e in self.rows if e.offer_id == offer_id), key=lambda e: (e.at, e.seq))

    def kinds(self, offer_id: str) -> list[str]:
        return [e.kind for e in self.of_offer(offer_id)]


class FakeNrmRecords(NrmRecords):
    def __init__(self) -> None:
        self.records: dict[str, NrmRecord] = {}
        self.decisions: dict[str, NrmDecision] = {}
        self.reconsiderations: dict[str, NrmReconsideration] = {}

    def record(self, case_id: str) -> NrmRecord | None:
        return self.records.get(case_id)

    def decision(self, decision_id: str) -> NrmDecision | None:
        return self.decisions.get(decision_id)

    def decisions_of(self, case_id: str) -> list[NrmDecision]:
        found = [d for d in self.decisions.values() if d.case_id == case_id]
        return sorted(found, key=lambda d: (d.decided_on, d.recorded_at))

    def reconsiderations_of(self, case_id: str) -> list[NrmReconsideration]:
        found = [r for r in self.reconsiderations.values() if r.case_id == case_id]
        return sorted(found, key=lambda r: r.requested_on)

    def add(self, row: NrmRow) -> None:
        if isinstance(row, NrmRecord):
            self.records[row.case_id] = row
        elif isinstance(row, NrmDecision):
            self.decisions[row.id] = row
        else:
            self.reconsiderations[row.id] = row


class FakeClocks(Clocks):
    def __init__(self, cases: FakeCases) -> None:
        self.rows: dict[str, Clock] = {}
        self._cases = cases

    def of_case(self, case_id: str) -> list[Clock]:
        return sorted((c for c in self.rows.values() if c.case_id == case_id), key=lambda c: (c.due_on, c.created_at))

    def running(self, case_id: str, *, kinds: Iterable[str] | None = None, lock: bool = False) -> list[Clock]:
        wanted = None if kinds is None else set(kinds)
        found = [
            c
            for c in self.rows.values()
            if c.case_id == case_id and c.stopped_at is None and (wanted is None or c.kind in wanted)
        ]
        return sorted(found, key=lambda c: (c.due_on, c.id))

    def add(self, clock: Clock) -> None:
        if clock.nature is None:  # the column's default, which only a flush would apply
            clock.nature = nature_of(clock.kind)
        self.rows[clock.id] = clock

    def claim(self, fired: str, day: date, now: datetime, limit: int) -> list[Clock]:
        attribute = "due_soon_fired_at" if fired == DUE_SOON else "breached_fired_at"

        def due(c: Clock) -> bool:
            if fired == DUE_SOON:
                return c.nature in ANNOUNCED and c.notice_on <= day <= c.due_on
            return c.nature in BREACHABLE and c.due_on < day

        claimed = sorted(
            (
                c
                for c in self.rows.values()
                if c.stopped_at is None
                and getattr(c, attribute) is None
                and due(c)
                and self._cases.rows[c.case_id].status == domain.CASE_OPEN
            ),
            key=lambda c: (c.due_on, c.id),
        )[:limit]
        for clock in claimed:
            setattr(clock, attribute, now)
        return claimed


class FakeTransitions(Transitions):
    def __init__(self, cases: FakeCases) -> None:
        self.rows: dict[str, Transition] = {}
        self._cases = cases

    def get(self, case_id: str, transition_id: str, *, lock: bool = False) -> Transition | None:
        found = self.rows.get(transition_id)
        return found if found is not None and found.case_id == case_id else None

    def of_case(self, case_id: str) -> list[Transition]:
        found = [t for t in self.rows.values() if t.case_id == case_id]
        return sorted(found, key=lambda t: (t.planned_for, t.created_at))

    def open_of(self, case_id: str) -> list[Transition]:
        found = [t for t in self.rows.values() if t.case_id == case_id and t.status in domain.OPEN_TRANSITION_STATUSES]
        return sorted(found, key=lambda t: t.id)

    def add(self, transition: Transition) -> None:
        self.rows[transition.id] = transition

    def claim_missed(self, day: date, now: datetime, limit: int) -> list[Transition]:
        claimed = sorted(
            (
                t
                for t in self.rows.values()
                if t.status in domain.OPEN_TRANSITION_STATUSES
                and t.planned_for < day
                and t.offered_at is None
                and self._cases.rows[t.case_id].status == domain.CASE_OPEN
            ),
            key=lambda t: (t.planned_for, t.id),
        )[:limit]
        for transition in claimed:
            transition.status, transition.missed_at, transition.updated_at = domain.TRANSITION_MISSED, now, now
        return sorted(claimed, key=lambda t: t.id)

    def claim_unanswered(self, now: datetime, limit: int) -> list[Transition]:
        claimed = sorted(
            (
                t
                for t in self.rows.values()
                if t.status in domain.OPEN_TRANSITION_STATUSES
                and t.offered_at is not None
                and t.respond_by is not None
                and t.respond_by < now
            ),
            key=lambda t: t.id,
        )[:limit]
        for transition in claimed:
            transition.status, transition.outcome = domain.TRANSITION_CANCELLED, domain.OUTCOME_UNANSWERED
            transition.updated_at = now
        return claimed


class FakeHandovers(Handovers):
    def __init__(self) -> None:
        self.rows: dict[str, Handover] = {}

    def get(self, handover_id: str, *, lock: bool = False) -> Handover | None:
        return self.rows.get(handover_id)

    def of_status(self, status: str) -> list[Handover]:
        found = [h for h in self.rows.values() if h.status == status]
        return sorted(found, key=lambda h: (h.respond_by, h.id))

    def add(self, handover: Handover) -> None:
        if handover.id in self.rows:
            raise AssertionError(f"handover {handover.id} exists: the primary key would refuse it")
        self.rows[handover.id] = handover

    def claim_expired(self, now: datetime, limit: int) -> list[Handover]:
        pending = self.of_status(domain.HANDOVER_PENDING)
        claimed = sorted((h for h in pending if h.respond_by < now), key=lambda h: h.id)[:limit]
        for handover in claimed:
            handover.status = domain.HANDOVER_EXPIRED
        return claimed


class FakeCaseConsents(CaseConsents):
    def __init__(self) -> None:
        self.rows: list[CaseConsentRecord] = []

    def of_case(self, case_id: str) -> list[CaseConsentRecord]:
        mine = [r for r in self.rows if r.case_id == case_id]
        return sorted(mine, key=lambda r: (r.obtained_at, r.recorded_at))

    def add(self, record: CaseConsentRecord) -> None:
        self.rows.append(record)


class FakeCaseSearch(CaseSearch):
    def __init__(self, nrm: FakeNrmRecords) -> None:
        self.tokens: dict[str, set[str]] = {}  # case id -> digests
        self._nrm = nrm

    def replace(self, case_id: str, digests: set[str]) -> None:
        self.tokens[case_id] = set(digests)

    def holding_all(self, digests: list[str]) -> list[str]:
        wanted = set(digests)
        return [case_id for case_id, held in self.tokens.items() if wanted and wanted <= held]

    def with_nrm_reference(self, reference: str) -> list[str]:
        return [r.case_id for r in self._nrm.records.values() if r.nrm_reference == reference]


class FakeCaseContacts(CaseContacts):
    def __init__(self, cases: FakeCases) -> None:
        self.rows: list[CaseContact] = []
        self._cases = cases

    def of_case(self, case_id: str) -> list[CaseContact]:
        return sorted((c for c in self.rows if c.case_id == case_id), key=lambda c: c.at, reverse=True)

    def add(self, contact: CaseContact) -> None:
        self.rows.append(contact)

    def claim_overdue(self, adult_before: datetime, child_before: datetime, now: datetime, limit: int) -> list[Case]:
        def lapsed(case: Case) -> bool:
            since = case.last_reached_at or case.opened_at
            return since < (child_before if (case.referral or {}).get("is_child") else adult_before)

        claimed = sorted(
            (
                c
                for c in self._cases.rows.values()
                if c.status == domain.CASE_OPEN and c.contact_overdue_at is None and lapsed(c)
            ),
            key=lambda c: (c.last_reached_at or c.opened_at, c.id),
        )[:limit]
        for case in claimed:
            case.contact_overdue_at = now
        return claimed


class FakeCaseNotes(CaseNotes):
    def __init__(self) -> None:
        self.rows: list[CaseNote] = []

    def of_case(self, case_id: str) -> list[CaseNote]:
        return sorted((n for n in self.rows if n.case_id == case_id), key=lambda n: n.written_at, reverse=True)

    def add(self, note: CaseNote) -> None:
        self.rows.append(note)


class FakeRiskFlags(RiskFlags):
    def __init__(self) -> None:
        self.rows: list[RiskFlag] = []

    def of_case(self, case_id: str) -> list[RiskFlag]:
        return sorted((r for r in self.rows if r.case_id == case_id), key=lambda r: r.raised_at, reverse=True)

    def add(self, flag: RiskFlag) -> None:
        self.rows.append(flag)


class FakeErasures(Erasures):
    def __init__(self, uow: FakeAdvocacyUnitOfWork) -> None:
        self._uow = uow
        self.forgotten: set[str] = set()  # ids whose stored responses and outbox rows were deleted
        self.shredded: set[str] = set()  # referrals whose data key was destroyed

    def cases_of(self, referral_id: str) -> list[Case]:
        return sorted((c for c in self._uow.cases.rows.values() if c.referral_id == referral_id), key=lambda c: c.id)

    def handovers_of(self, referral_id: str) -> list[Handover]:
        found = (h for h in self._uow.handovers.rows.values() if h.referral_id == referral_id)
        return sorted(found, key=lambda h: h.id)

    def delete_case_records(self, case_ids: list[str]) -> None:
        doomed = set(case_ids)
        uow = self._uow
        uow.contacts.rows = [r for r in uow.contacts.rows if r.case_id not in doomed]
        uow.notes.rows = [r for r in uow.notes.rows if r.case_id not in doomed]
        uow.risks.rows = [r for r in uow.risks.rows if r.case_id not in doomed]
        uow.consents.rows = [r for r in uow.consents.rows if r.case_id not in doomed]
        uow.search.tokens = {c: d for c, d in uow.search.tokens.items() if c not in doomed}

    def forget_messages(self, ids: set[str]) -> None:
        self.forgotten |= ids

    def shred(self, referral_id: str) -> None:
        self.shredded.add(referral_id)


class FakeAdvocacyUnitOfWork(FakeUnitOfWork, AdvocacyUnitOfWork):
    def __init__(self, provider_id: str) -> None:
        super().__init__()
        self.provider_id = provider_id
        self.advocates = FakeAdvocates()
        self.offers = FakeOffers()
        self.cases = FakeCases(self.offers)
        self.timeline = FakeTimeline()
        self.nrm = FakeNrmRecords()
        self.clocks = FakeClocks(self.cases)
        self.transitions = FakeTransitions(self.cases)
        self.handovers = FakeHandovers()
        self.consents = FakeCaseConsents()
        self.contacts = FakeCaseContacts(self.cases)
        self.notes = FakeCaseNotes()
        self.risks = FakeRiskFlags()
        self.search = FakeCaseSearch(self.nrm)
        self.erasures = FakeErasures(self)
