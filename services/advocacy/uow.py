"""advocacy's unit of work: one charity's records, read and changed through repositories, and the events
that report the change, committed together (shared.uow).

Every repository is this provider's alone: each query filters on `provider_id`, so an instance serves one
charity even if its database were ever shared by mistake. Rows that others refer to by a foreign key (an
offer, a case, a decision, a transition) are written as soon as they are added, so what refers to them can
follow in any order.

The use cases (casework/, continuity/) and the event handlers take an `AdvocacyUnitOfWork`;
`SqlAdvocacyUnitOfWork` is the one over the instance's database, and the unit tests' fake
(tests/support/fake_advocacy.py) keeps the same records in memory.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable
from datetime import date, datetime

from sqlalchemy import ColumnElement, and_, bindparam, delete, func, not_, or_, select, update
from sqlalchemy.orm import Session, selectinload, sessionmaker

from services.advocacy import domain
from services.advocacy.continuity.deadlines import ANNOUNCED, BREACHABLE
from services.advocacy.models import (
    Advocate,
    Case,
    CaseConsentRecord,
    CaseContact,
    CaseNote,
    CaseSearchToken,
    Clock,
    Handover,
    IdempotencyKey,
    Inbox,
    NrmDecision,
    NrmReconsideration,
    NrmRecord,
    Offer,
    Outbox,
    RiskFlag,
    TimelineEntry,
    Transition,
)
from shared.db import scrub_files
from shared.idempotency import stored_naming
from shared.sealed import data_keys
from shared.uow import SqlUnitOfWork, UnitOfWork

NrmRow = NrmRecord | NrmDecision | NrmReconsideration
DUE_SOON, BREACHED = "due_soon", "breached"


class Advocates(abc.ABC):
    @abc.abstractmethod
    def get(self, advocate_id: str) -> Advocate | None: ...

    @abc.abstractmethod
    def by_email(self, email: str) -> Advocate | None: ...

    @abc.abstractmethod
    def all(self, *, lock: bool = False) -> list[Advocate]:
        """In id order; `lock`: row locks taken in that order, so two accepts cannot deadlock."""

    @abc.abstractmethod
    def add(self, advocate: Advocate) -> None: ...


class Offers(abc.ABC):
    @abc.abstractmethod
    def get(self, offer_id: str, *, lock: bool = False) -> Offer | None: ...

    @abc.abstractmethod
    def of_referral(self, referral_id: str, *, lock: bool = False) -> list[Offer]:
        """In id order."""

    @abc.abstractmethod
    def add(self, offer: Offer) -> None: ...


class Cases(abc.ABC):
    @abc.abstractmethod
    def get(self, case_id: str) -> Case | None: ...

    @abc.abstractmethod
    def by_ids(self, ids: Iterable[str]) -> dict[str, Case]: ...

    @abc.abstractmethod
    def handed_over(self, referral_id: str) -> Case | None:
        """The live case another provider handed over to us for this referral, if it has arrived."""

    @abc.abstractmethod
    def caseloads(self) -> dict[str, int]:
        """Each advocate's caseload: their cases that are opening or open."""

    @abc.abstractmethod
    def add(self, case: Case) -> None: ...

    @abc.abstractmethod
    def lock(self, case: Case) -> None:
        """Take the case's row lock and read it again: another transaction may have changed it."""


class Timeline(abc.ABC):
    @abc.abstractmethod
    def add(self, entry: TimelineEntry) -> None: ...

    @abc.abstractmethod
    def of_offer(self, offer_id: str) -> list[TimelineEntry]:
        """In the order things happened."""


class NrmRecords(abc.ABC):
    @abc.abstractmethod
    def record(self, case_id: str) -> NrmRecord | None: ...

    @abc.abstractmethod
    def decision(self, decision_id: str) -> NrmDecision | None: ...

    @abc.abstractmethod
    def decisions_of(self, case_id: str) -> list[NrmDecision]:
        """By decision date, then when recorded."""

    @abc.abstractmethod
    def reconsiderations_of(self, case_id: str) -> list[NrmReconsideration]:
        """By the date requested."""

    @abc.abstractmethod
    def add(self, row: NrmRow) -> None: ...


class Clocks(abc.ABC):
    @abc.abstractmethod
    def of_case(self, case_id: str) -> list[Clock]:
        """By due date, then when created."""

    @abc.abstractmethod
    def running(self, case_id: str, *, kinds: Iterable[str] | None = None, lock: bool = False) -> list[Clock]:
        """The case's clocks not stopped (of these kinds, when given), by due date."""

    @abc.abstractmethod
    def add(self, clock: Clock) -> None: ...

    @abc.abstractmethod
    def claim(self, fired: str, day: date, now: datetime, limit: int) -> list[Clock]:
        """Mark up to `limit` clocks of open cases as fired `due_soon` (in their notice period on `day`; a
        deadline or a support end) or `breached` (past due on `day`; a deadline only: a minimum or a support
        end is never missed), each once whoever else claims at the same moment; by due date."""


class Transitions(abc.ABC):
    @abc.abstractmethod
    def get(self, case_id: str, transition_id: str, *, lock: bool = False) -> Transition | None: ...

    @abc.abstractmethod
    def of_case(self, case_id: str) -> list[Transition]:
        """By planned date, then when created."""

    @abc.abstractmethod
    def open_of(self, case_id: str) -> list[Transition]: ...

    @abc.abstractmethod
    def add(self, transition: Transition) -> None: ...

    @abc.abstractmethod
    def claim_missed(self, day: date, now: datetime, limit: int) -> list[Transition]:
        """Mark up to `limit` transitions of open cases still open after their planned date as missed, each
        once; by id. A provider handover offered and awaiting its answer is not missed: its deadline rules."""

    @abc.abstractmethod
    def claim_unanswered(self, now: datetime, limit: int) -> list[Transition]:
        """Mark up to `limit` offered provider handovers still open past their `respond_by` as cancelled,
        `unanswered`, each once; by id."""


class Handovers(abc.ABC):
    """Provider handovers offered to this provider."""

    @abc.abstractmethod
    def get(self, handover_id: str, *, lock: bool = False) -> Handover | None: ...

    @abc.abstractmethod
    def of_status(self, status: str) -> list[Handover]:
        """By deadline, soonest first."""

    @abc.abstractmethod
    def add(self, handover: Handover) -> None: ...

    @abc.abstractmethod
    def claim_expired(self, now: datetime, limit: int) -> list[Handover]:
        """Mark up to `limit` pending handovers past their `respond_by` as expired, each once; by id."""


class CaseConsents(abc.ABC):
    @abc.abstractmethod
    def of_case(self, case_id: str) -> list[CaseConsentRecord]:
        """Oldest first: obtained, then recorded."""

    @abc.abstractmethod
    def add(self, record: CaseConsentRecord) -> None: ...


class CaseSearch(abc.ABC):
    """The blind index (casework.search): digests only."""

    @abc.abstractmethod
    def replace(self, case_id: str, digests: set[str]) -> None:
        """The case's tokens become exactly `digests`."""

    @abc.abstractmethod
    def holding_all(self, digests: list[str]) -> list[str]:
        """Ids of this provider's cases holding every one of `digests` (none for an empty list)."""

    @abc.abstractmethod
    def with_nrm_reference(self, reference: str) -> list[str]:
        """Ids of this provider's cases whose NRM reference is exactly `reference`."""


class CaseContacts(abc.ABC):
    @abc.abstractmethod
    def of_case(self, case_id: str) -> list[CaseContact]:
        """Newest first."""

    @abc.abstractmethod
    def add(self, contact: CaseContact) -> None: ...

    @abc.abstractmethod
    def claim_overdue(self, adult_before: datetime, child_before: datetime, now: datetime, limit: int) -> list[Case]:
        """Mark up to `limit` open cases whose last reached contact (or opening, when none) is before
        `child_before` for a child's case, `adult_before` for an adult's, and whose episode is not yet announced,
        as announced at `now`, each once whoever else claims at the same moment; oldest first."""


class CaseNotes(abc.ABC):
    @abc.abstractmethod
    def of_case(self, case_id: str) -> list[CaseNote]:
        """Newest first."""

    @abc.abstractmethod
    def add(self, note: CaseNote) -> None: ...


class RiskFlags(abc.ABC):
    @abc.abstractmethod
    def of_case(self, case_id: str) -> list[RiskFlag]:
        """Newest first."""

    @abc.abstractmethod
    def add(self, flag: RiskFlag) -> None: ...


class Erasures(abc.ABC):
    """What an erasure (casework.erasure) finds and removes about one referral, beyond the other repositories."""

    @abc.abstractmethod
    def cases_of(self, referral_id: str) -> list[Case]:
        """This provider's cases of the referral, whatever their status (a handed-over one too), by id."""

    @abc.abstractmethod
    def handovers_of(self, referral_id: str) -> list[Handover]:
        """Provider handovers of the referral offered to this provider, by id."""

    @abc.abstractmethod
    def delete_case_records(self, case_ids: list[str]) -> None:
        """Delete the cases' contacts, notes, risk flags, consent records and search tokens."""

    @abc.abstractmethod
    def forget_messages(self, ids: set[str]) -> None:
        """Delete the stored idempotent responses and the outbox rows (sent or not) that name any of `ids`."""

    @abc.abstractmethod
    def shred(self, referral_id: str) -> None:
        """Destroy the referral's data key (shared.sealed): whatever still holds its ciphertext, a backup or a
        WAL file, holds nothing readable."""


class AdvocacyUnitOfWork(UnitOfWork):
    provider_id: str
    # Set by an erasure: once this unit commits, the database files are scrubbed (shared.db.scrub_files).
    scrub_after_commit: bool = False
    advocates: Advocates
    offers: Offers
    cases: Cases
    timeline: Timeline
    nrm: NrmRecords
    clocks: Clocks
    transitions: Transitions
    handovers: Handovers
    consents: CaseConsents
    contacts: CaseContacts
    notes: CaseNotes
    risks: RiskFlags
    search: CaseSearch
    erasures: Erasures


# --- over the instance's database ---------------------------------------------------------------------------


class SqlAdvocacyUnitOfWork(SqlUnitOfWork, AdvocacyUnitOfWork):
    outbox_table = Outbox
    inbox_table = Inbox

    def __init__(self, sessions: sessionmaker, provider_id: str, *, after_commit: Callable[[], None] | None = None):
        super().__init__(sessions, after_commit=after_commit)
        self.provider_id = provider_id

    def open(self, session: Session) -> None:
        self.advocates = _SqlAdvocates(session, self.provider_id)
        self.offers = _SqlOffers(session, self.provider_id)
        self.cases = _SqlCases(session, self.provider_id)
        self.timeline = _SqlTimeline(session)
        self.nrm = _SqlNrmRecords(session)
        self.clocks = _SqlClocks(session, self.provider_id)
        self.transitions = _SqlTransitions(session, self.provider_id)
        self.handovers = _SqlHandovers(session, self.provider_id)
        self.consents = _SqlCaseConsents(session, self.provider_id)
        self.contacts = _SqlCaseContacts(session, self.provider_id)
        self.notes = _SqlCaseNotes(session, self.provider_id)
        self.risks = _SqlRiskFlags(session, self.provider_id)
        self.search = _SqlCaseSearch(session, self.provider_id)
        self.erasures = _SqlErasures(session, self.provider_id)

    def commit(self) -> None:
        super().commit()
        if self.scrub_after_commit:  # an erasure: no erased value left in SQLite's files either
            self.scrub_after_commit = False
            scrub_files(self.session.get_bind())  # type: ignore[arg-type]  # an Engine: sessions bind to one


class _Sql:
    def __init__(self, session: Session, provider_id: str = ""):
        self.session = session
        self.provider_id = provider_id


class _SqlAdvocates(_Sql, Advocates):
    def get(self, advocate_id: str) -> Advocate | None:
        found = self.session.get(Advocate, advocate_id)
        return found if found is not None and found.provider_id == self.provider_id else None

    def by_email(self, email: str) -> Advocate | None:
        query = select(Advocate).where(Advocate.provider_id == self.provider_id, Advocate.email == email)
        return self.session.scalars(query).one_or_none()

    def all(self, *, lock: bool = False) -> list[Advocate]:
        return list(self.session.scalars(_LOCKED_ADVOCATES if lock else _ADVOCATES, {"provider_id": self.provider_id}))

    def add(self, advocate: Advocate) -> None:
        self.session.add(advocate)
        self.session.flush()  # the unique email is checked now, inside the use case


# Built once: what an accept reads (Casework._advocate_loads), the advocates row-locked and then their caseloads
# counted. Two statements, not one with the count as a sub-select: under READ COMMITTED a statement counts by the
# snapshot it started with, which is from before it waited for the lock; the count that follows the lock sees the
# case the accept it waited for committed.
_ADVOCATES = select(Advocate).where(Advocate.provider_id == bindparam("provider_id")).order_by(Advocate.id)
_LOCKED_ADVOCATES = _ADVOCATES.with_for_update()
_CASELOADS = (
    select(Case.advocate_id, func.count())
    .where(Case.provider_id == bindparam("provider_id"), Case.status.in_(domain.LIVE_CASE_STATUSES))
    .group_by(Case.advocate_id)
)


class _SqlOffers(_Sql, Offers):
    def get(self, offer_id: str, *, lock: bool = False) -> Offer | None:
        query = select(Offer).where(Offer.id == offer_id, Offer.provider_id == self.provider_id)
        return self.session.scalars(query.with_for_update() if lock else query).one_or_none()

    def of_referral(self, referral_id: str, *, lock: bool = False) -> list[Offer]:
        query = (
            select(Offer)
            .where(Offer.referral_id == referral_id, Offer.provider_id == self.provider_id)
            .order_by(Offer.id)
        )
        return list(self.session.scalars(query.with_for_update() if lock else query))

    def add(self, offer: Offer) -> None:
        self.session.add(offer)  # written at the next flush, with what the use case adds after it


class _SqlCases(_Sql, Cases):
    def get(self, case_id: str) -> Case | None:
        query = select(Case).where(Case.id == case_id, Case.provider_id == self.provider_id)
        return self.session.scalars(query).one_or_none()

    def by_ids(self, ids: Iterable[str]) -> dict[str, Case]:
        query = select(Case).where(Case.id.in_(set(ids))).options(selectinload(Case.offer))
        return {case.id: case for case in self.session.scalars(query)}

    def handed_over(self, referral_id: str) -> Case | None:
        query = select(Case).where(
            Case.provider_id == self.provider_id,
            Case.referral_id == referral_id,
            Case.offer_id.startswith(domain.HANDOVER_OFFER_PREFIX),
            Case.status.in_(domain.LIVE_CASE_STATUSES),
        )
        return self.session.scalars(query).first()

    def caseloads(self) -> dict[str, int]:
        return dict(self.session.execute(_CASELOADS, {"provider_id": self.provider_id}).tuples().all())

    def add(self, case: Case) -> None:
        self.session.add(case)

    def lock(self, case: Case) -> None:
        self.session.refresh(case, with_for_update=True)


class _SqlTimeline(_Sql, Timeline):
    def add(self, entry: TimelineEntry) -> None:
        self.session.add(entry)

    def of_offer(self, offer_id: str) -> list[TimelineEntry]:
        query = select(TimelineEntry).where(TimelineEntry.offer_id == offer_id)
        return list(self.session.scalars(query.order_by(TimelineEntry.at, TimelineEntry.seq)))


class _SqlNrmRecords(_Sql, NrmRecords):
    def record(self, case_id: str) -> NrmRecord | None:
        return self.session.get(NrmRecord, case_id)

    def decision(self, decision_id: str) -> NrmDecision | None:
        return self.session.get(NrmDecision, decision_id)

    def decisions_of(self, case_id: str) -> list[NrmDecision]:
        query = select(NrmDecision).where(NrmDecision.case_id == case_id)
        return list(self.session.scalars(query.order_by(NrmDecision.decided_on, NrmDecision.recorded_at)))

    def reconsiderations_of(self, case_id: str) -> list[NrmReconsideration]:
        query = select(NrmReconsideration).where(NrmReconsideration.case_id == case_id)
        return list(self.session.scalars(query.order_by(NrmReconsideration.requested_on)))

    def add(self, row: NrmRow) -> None:
        self.session.add(row)
        if isinstance(row, NrmDecision):
            self.session.flush()  # a reconsideration names it


class _SqlClocks(_Sql, Clocks):
    def of_case(self, case_id: str) -> list[Clock]:
        query = select(Clock).where(Clock.case_id == case_id, Clock.provider_id == self.provider_id)
        return list(self.session.scalars(query.order_by(Clock.due_on, Clock.created_at)))

    def running(self, case_id: str, *, kinds: Iterable[str] | None = None, lock: bool = False) -> list[Clock]:
        query = select(Clock).where(Clock.case_id == case_id, Clock.stopped_at.is_(None))
        if kinds is not None:
            query = query.where(Clock.kind.in_(list(kinds)))
        query = query.order_by(Clock.due_on, Clock.id)
        return list(self.session.scalars(query.with_for_update() if lock else query))

    def add(self, clock: Clock) -> None:
        self.session.add(clock)

    def claim(self, fired: str, day: date, now: datetime, limit: int) -> list[Clock]:
        # One UPDATE ... WHERE fired_at IS NULL ... RETURNING claims the rows; on PostgreSQL through a FOR UPDATE
        # SKIP LOCKED sub-select, so a second scheduler skips rows the first holds, and re-checks IS NULL on any
        # it waited for. The events are staged in this same transaction: each clock fires once.
        fired_at = Clock.due_soon_fired_at if fired == DUE_SOON else Clock.breached_fired_at
        due: tuple[ColumnElement[bool], ...]
        if fired == DUE_SOON:
            due = (Clock.nature.in_(ANNOUNCED), Clock.notice_on <= day, Clock.due_on >= day)
        else:
            due = (Clock.nature.in_(BREACHABLE), Clock.due_on < day)
        candidates = (
            select(Clock.id)
            .where(Clock.provider_id == self.provider_id, Clock.stopped_at.is_(None), fired_at.is_(None), *due)
            .where(Clock.case_id.in_(_open_cases()))
            .order_by(Clock.due_on, Clock.id)
            .limit(limit)
        )
        return _claim(
            self.session,
            Clock,
            candidates,
            (fired_at.is_(None), Clock.stopped_at.is_(None)),
            {fired_at: now},
            order_by=(Clock.due_on, Clock.id),
        )


class _SqlTransitions(_Sql, Transitions):
    def get(self, case_id: str, transition_id: str, *, lock: bool = False) -> Transition | None:
        query = select(Transition).where(
            Transition.id == transition_id, Transition.case_id == case_id, Transition.provider_id == self.provider_id
        )
        return self.session.scalars(query.with_for_update() if lock else query).one_or_none()

    def of_case(self, case_id: str) -> list[Transition]:
        query = select(Transition).where(Transition.case_id == case_id, Transition.provider_id == self.provider_id)
        return list(self.session.scalars(query.order_by(Transition.planned_for, Transition.created_at)))

    def open_of(self, case_id: str) -> list[Transition]:
        is_open = Transition.status.in_(domain.OPEN_TRANSITION_STATUSES)
        query = select(Transition).where(Transition.case_id == case_id, is_open).order_by(Transition.id)
        return list(self.session.scalars(query))

    def add(self, transition: Transition) -> None:
        self.session.add(transition)
        self.session.flush()

    def claim_missed(self, day: date, now: datetime, limit: int) -> list[Transition]:
        is_open = Transition.status.in_(domain.OPEN_TRANSITION_STATUSES)
        candidates = (
            select(Transition.id)
            .where(Transition.provider_id == self.provider_id, is_open, Transition.planned_for < day)
            .where(Transition.offered_at.is_(None))
            .where(Transition.case_id.in_(_open_cases()))
            .order_by(Transition.planned_for, Transition.id)
            .limit(limit)
        )
        return _claim(
            self.session,
            Transition,
            candidates,
            (is_open,),
            {"status": domain.TRANSITION_MISSED, "missed_at": now, "updated_at": now},
            order_by=(Transition.id,),
        )

    def claim_unanswered(self, now: datetime, limit: int) -> list[Transition]:
        is_open = Transition.status.in_(domain.OPEN_TRANSITION_STATUSES)
        late = (is_open, Transition.offered_at.is_not(None), Transition.respond_by < now)
        candidates = (
            select(Transition.id)
            .where(Transition.provider_id == self.provider_id, *late)
            .order_by(Transition.id)
            .limit(limit)
        )
        return _claim(
            self.session,
            Transition,
            candidates,
            late,
            {"status": domain.TRANSITION_CANCELLED, "outcome": domain.OUTCOME_UNANSWERED, "updated_at": now},
            order_by=(Transition.id,),
        )


class _SqlHandovers(_Sql, Handovers):
    def get(self, handover_id: str, *, lock: bool = False) -> Handover | None:
        query = select(Handover).where(Handover.id == handover_id, Handover.provider_id == self.provider_id)
        return self.session.scalars(query.with_for_update() if lock else query).one_or_none()

    def of_status(self, status: str) -> list[Handover]:
        query = select(Handover).where(Handover.provider_id == self.provider_id, Handover.status == status)
        return list(self.session.scalars(query.order_by(Handover.respond_by, Handover.id)))

    def add(self, handover: Handover) -> None:
        self.session.add(handover)
        self.session.flush()

    def claim_expired(self, now: datetime, limit: int) -> list[Handover]:
        late = (Handover.status == domain.HANDOVER_PENDING, Handover.respond_by < now)
        candidates = (
            select(Handover.id)
            .where(Handover.provider_id == self.provider_id, *late)
            .order_by(Handover.id)
            .limit(limit)
        )
        return _claim(
            self.session, Handover, candidates, late, {"status": domain.HANDOVER_EXPIRED}, order_by=(Handover.id,)
        )


class _SqlCaseConsents(_Sql, CaseConsents):
    def of_case(self, case_id: str) -> list[CaseConsentRecord]:
        statement = (
            select(CaseConsentRecord)
            .where(CaseConsentRecord.provider_id == self.provider_id, CaseConsentRecord.case_id == case_id)
            .order_by(CaseConsentRecord.obtained_at, CaseConsentRecord.recorded_at, CaseConsentRecord.id)
        )
        return list(self.session.scalars(statement))

    def add(self, record: CaseConsentRecord) -> None:
        self.session.add(record)


class _SqlCaseSearch(_Sql, CaseSearch):
    def replace(self, case_id: str, digests: set[str]) -> None:
        self.session.execute(delete(CaseSearchToken).where(CaseSearchToken.case_id == case_id))
        self.session.add_all(
            CaseSearchToken(case_id=case_id, digest=d, provider_id=self.provider_id) for d in sorted(digests)
        )

    def holding_all(self, digests: list[str]) -> list[str]:
        wanted = set(digests)
        if not wanted:
            return []
        statement = (
            select(CaseSearchToken.case_id)
            .where(CaseSearchToken.provider_id == self.provider_id, CaseSearchToken.digest.in_(wanted))
            .group_by(CaseSearchToken.case_id)
            .having(func.count() == len(wanted))
        )
        return list(self.session.scalars(statement))

    def with_nrm_reference(self, reference: str) -> list[str]:
        statement = select(NrmRecord.case_id).where(
            NrmRecord.provider_id == self.provider_id, NrmRecord.nrm_reference == reference
        )
        return list(self.session.scalars(statement))


class _SqlCaseContacts(_Sql, CaseContacts):
    def of_case(self, case_id: str) -> list[CaseContact]:
        mine = (CaseContact.provider_id == self.provider_id, CaseContact.case_id == case_id)
        statement = select(CaseContact).where(*mine).order_by(CaseContact.at.desc(), CaseContact.id)
        return list(self.session.scalars(statement))

    def add(self, contact: CaseContact) -> None:
        self.session.add(contact)

    def claim_overdue(self, adult_before: datetime, child_before: datetime, now: datetime, limit: int) -> list[Case]:
        # The clocks' claim (see Clocks.claim): SKIP LOCKED candidates, then an UPDATE only a case whose episode
        # is not yet announced passes; the event is staged in this same transaction, so it goes out once.
        counted_from = func.coalesce(Case.last_reached_at, Case.opened_at)
        child = Case.is_child
        lapsed = or_(and_(child, counted_from < child_before), and_(not_(child), counted_from < adult_before))
        waiting = (Case.status == domain.CASE_OPEN, Case.contact_overdue_at.is_(None))
        candidates = (
            select(Case.id)
            .where(Case.provider_id == self.provider_id, *waiting, lapsed)
            .order_by(counted_from, Case.id)
            .limit(limit)
        )
        return _claim(
            self.session, Case, candidates, waiting, {Case.contact_overdue_at: now}, order_by=(counted_from, Case.id)
        )


class _SqlCaseNotes(_Sql, CaseNotes):
    def of_case(self, case_id: str) -> list[CaseNote]:
        mine = (CaseNote.provider_id == self.provider_id, CaseNote.case_id == case_id)
        statement = select(CaseNote).where(*mine).order_by(CaseNote.written_at.desc(), CaseNote.id)
        return list(self.session.scalars(statement))

    def add(self, note: CaseNote) -> None:
        self.session.add(note)


class _SqlRiskFlags(_Sql, RiskFlags):
    def of_case(self, case_id: str) -> list[RiskFlag]:
        mine = (RiskFlag.provider_id == self.provider_id, RiskFlag.case_id == case_id)
        statement = select(RiskFlag).where(*mine).order_by(RiskFlag.raised_at.desc(), RiskFlag.id)
        return list(self.session.scalars(statement))

    def add(self, flag: RiskFlag) -> None:
        self.session.add(flag)


class _SqlErasures(_Sql, Erasures):
    def cases_of(self, referral_id: str) -> list[Case]:
        query = select(Case).where(Case.provider_id == self.provider_id, Case.referral_id == referral_id)
        return list(self.session.scalars(query.order_by(Case.id)))

    def handovers_of(self, referral_id: str) -> list[Handover]:
        query = select(Handover).where(Handover.provider_id == self.provider_id, Handover.referral_id == referral_id)
        return list(self.session.scalars(query.order_by(Handover.id)))

    def delete_case_records(self, case_ids: list[str]) -> None:
        if not case_ids:
            return
        for model in (CaseContact, CaseNote, RiskFlag, CaseConsentRecord, CaseSearchToken):
            self.session.execute(delete(model).where(model.case_id.in_(case_ids)))

    def forget_messages(self, ids: set[str]) -> None:
        if not ids:
            return
        named = or_(*(Outbox.payload.contains(i, autoescape=True) for i in sorted(ids)))
        self.session.execute(delete(Outbox).where(named).execution_options(synchronize_session=False))
        # A stored response is sealed bytes (JSON or not): opened and matched, in the at most TTL of rows there are.
        doomed = stored_naming(self.session, IdempotencyKey, [i.encode() for i in ids])
        if doomed:
            self.session.execute(delete(IdempotencyKey).where(IdempotencyKey.id.in_(doomed)))

    def shred(self, referral_id: str) -> None:
        data_keys(self.session).destroy(referral_id)


def _claim(session: Session, model, candidates, still: tuple, values: dict, *, order_by: tuple) -> list:
    """Claim rows for one worker: lock the `candidates` (SKIP LOCKED, so two workers never take one row), set
    `values` on those that still match `still`, and return them in `order_by`."""
    locked = candidates.with_for_update(skip_locked=True).scalar_subquery()
    claimed = session.execute(
        update(model)
        .where(model.id.in_(locked), *still)
        .values(values)
        .returning(model.id)
        .execution_options(synchronize_session=False)
    )
    ids = [row[0] for row in claimed]
    if not ids:
        return []
    return list(session.scalars(select(model).where(model.id.in_(ids)).order_by(*order_by)))


def _open_cases():
    # A closed case (withdrawn, handed over) fires nothing more.
    return select(Case.id).where(Case.status == domain.CASE_OPEN).scalar_subquery()
