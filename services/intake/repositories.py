"""Where intake's use cases find and keep their records: one repository per kind, each a few named questions.

The abstract classes say what a use case may ask; the `Sql*` ones answer over one SQLAlchemy session (the
unit of work's), and tests/support/fake_intake.py answers from dicts. Lock order is the same everywhere, so
the API, the consumer and the deadline sweep never deadlock: the referral row first, then its offers.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.orm import Session

from services.intake.models import (
    Agency,
    ConsentRecord,
    Disclosure,
    DutyToNotifyRecord,
    Erasure,
    Escalation,
    IdempotencyKey,
    Offer,
    Outbox,
    Provider,
    Rectification,
    Referral,
)
from services.intake.routing import ProviderEntry
from shared.idempotency import stored_naming
from shared.sealed import data_keys


class Conflict(Exception):
    """A record the unit added broke a uniqueness rule when it committed (the database's word, never a check
    beforehand: two requests racing would both pass the check)."""


class Referrals(abc.ABC):
    def __init__(self) -> None:
        self.seen: list[Referral] = []  # whose recorded events the unit stages when it commits

    def add(self, referral: Referral) -> None:
        self._add(referral)
        self.seen.append(referral)

    def get(self, referral_id: str, *, lock: bool = False) -> Referral | None:
        """The referral, locked until the unit ends when `lock` (always before any of its offers)."""
        return self._seen(self._get(referral_id, lock=lock))

    def claim(self, referral_id: str) -> Referral | None:
        """The referral, locked; None when another transaction holds it (it is already being dealt with)."""
        return self._seen(self._claim(referral_id))

    def by_reference(self, org_id: str, external_reference: str) -> Referral | None:
        return self._seen(self._by_reference(org_id, external_reference))

    def _seen(self, referral: Referral | None) -> Referral | None:
        if referral is not None and referral not in self.seen:
            self.seen.append(referral)
        return referral

    @abc.abstractmethod
    def _add(self, referral: Referral) -> None: ...

    @abc.abstractmethod
    def _get(self, referral_id: str, *, lock: bool) -> Referral | None: ...

    @abc.abstractmethod
    def _claim(self, referral_id: str) -> Referral | None: ...

    @abc.abstractmethod
    def _by_reference(self, org_id: str, external_reference: str) -> Referral | None: ...


class Offers(abc.ABC):
    @abc.abstractmethod
    def add(self, offer: Offer) -> None: ...

    @abc.abstractmethod
    def get(self, offer_id: str, *, lock: bool = False) -> Offer | None:
        """The offer as it stands now, never an older copy: take its referral's lock first."""

    @abc.abstractmethod
    def of(self, referral_id: str) -> list[Offer]:
        """Every offer of the referral, oldest first."""

    @abc.abstractmethod
    def pending_for(self, referral_id: str) -> list[Offer]: ...

    @abc.abstractmethod
    def providers_offered(self, referral_id: str) -> Sequence[str]:
        """Who was offered the referral before (nobody is offered it twice by routing)."""

    @abc.abstractmethod
    def due(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        """(offer id, referral id) of pending offers past their deadline, the longest overdue first; unlocked."""


class Providers(abc.ABC):
    @abc.abstractmethod
    def add(self, provider: Provider) -> None: ...

    @abc.abstractmethod
    def get(self, provider_id: str, *, lock: bool = False) -> Provider | None: ...

    @abc.abstractmethod
    def directory(self) -> list[ProviderEntry]:
        """Every provider as routing sees it: the places it reported less the offers it has not answered yet
        (a place held open for a pending offer is not free for the next referral)."""


class Agencies(abc.ABC):
    """The agency directory (services.intake.agencies)."""

    @abc.abstractmethod
    def add(self, agency: Agency) -> None: ...

    @abc.abstractmethod
    def get(self, org_id: str) -> Agency | None: ...

    @abc.abstractmethod
    def covering(self, code: str, *, kind: str) -> list[Agency]:
        """The agencies of `kind` whose local_authority_codes hold the ONS `code`, by org id."""


class Escalations(abc.ABC):
    @abc.abstractmethod
    def add(self, escalation: Escalation) -> None: ...

    @abc.abstractmethod
    def open_for(self, referral_id: str) -> list[Escalation]: ...


class Disclosures(abc.ABC):
    @abc.abstractmethod
    def add(self, disclosure: Disclosure) -> None: ...

    @abc.abstractmethod
    def of(self, referral_id: str) -> list[Disclosure]:
        """The referral's disclosures, oldest first: the record of its recipients."""

    def recorded(self, referral_id: str, recipient_org: str, purpose: str) -> bool:
        return any((d.recipient_org, d.purpose) == (recipient_org, purpose) for d in self.of(referral_id))


class Erasures(abc.ABC):
    @abc.abstractmethod
    def add(self, erasure: Erasure) -> None: ...

    @abc.abstractmethod
    def of_referral(self, referral_id: str) -> Erasure | None: ...

    @abc.abstractmethod
    def get(self, erasure_id: str, *, lock: bool = False) -> Erasure | None: ...

    @abc.abstractmethod
    def forget_stored(self, referral_id: str) -> None:
        """Delete what intake stored about the referral beside its records: the stored idempotent responses that
        name it, its outbox rows (the events about it, sent or not), and its data key (crypto-shredding:
        whatever still holds its ciphertext, a backup or a WAL file, holds nothing readable)."""


class Rectifications(abc.ABC):
    @abc.abstractmethod
    def add(self, rectification: Rectification) -> None: ...


class DutyToNotifyRecords(abc.ABC):
    """The anonymous Duty to Notify records: added, and never looked up by referral (nothing links them)."""

    @abc.abstractmethod
    def add(self, record: DutyToNotifyRecord) -> None: ...


class ConsentRecords(abc.ABC):
    @abc.abstractmethod
    def add(self, record: ConsentRecord) -> None: ...

    @abc.abstractmethod
    def of(self, referral_id: str) -> list[ConsentRecord]:
        """The referral's records, oldest first (obtained, then recorded): the last of a purpose is in force."""


# --- over PostgreSQL (or SQLite), in the unit of work's session ----------------------------------------


class SqlReferrals(Referrals):
    def __init__(self, session: Session):
        super().__init__()
        self._session = session

    def _add(self, referral: Referral) -> None:
        data_keys(self._session).new(referral.id)  # a new referral (Referral.receive's uuid): no key to look up
        self._session.add(referral)

    def _get(self, referral_id: str, *, lock: bool) -> Referral | None:
        return self._session.get(Referral, referral_id, with_for_update=lock or None)

    def _claim(self, referral_id: str) -> Referral | None:
        statement = select(Referral).where(Referral.id == referral_id).with_for_update(skip_locked=True)
        return self._session.scalars(statement).first()

    def _by_reference(self, org_id: str, external_reference: str) -> Referral | None:
        found = self._session.scalars(_BY_REFERENCE, {"org_id": org_id, "reference": external_reference})
        return found.one_or_none()


# Built once: the statements of intake's POST (a reference sent before, and the directory routing reads).
_BY_REFERENCE = select(Referral).where(
    Referral.org_id == bindparam("org_id"), Referral.external_reference == bindparam("reference")
)
_PENDING = (
    select(Offer.provider_id, func.count().label("pending"))
    .where(Offer.status == "pending")
    .group_by(Offer.provider_id)
    .subquery()
)
# Each provider with its spare places less the offers it has not answered yet: one statement.
_DIRECTORY = select(
    Provider.id,
    Provider.regions,
    Provider.serves,
    Provider.accepting,
    Provider.capacity - func.coalesce(_PENDING.c.pending, 0),
    Provider.languages,
    Provider.sexes,
).outerjoin(_PENDING, _PENDING.c.provider_id == Provider.id)


class SqlOffers(Offers):
    def __init__(self, session: Session):
        self._session = session

    def add(self, offer: Offer) -> None:
        self._session.add(offer)

    def get(self, offer_id: str, *, lock: bool = False) -> Offer | None:
        return self._session.get(Offer, offer_id, with_for_update=lock or None, populate_existing=not lock)

    def of(self, referral_id: str) -> list[Offer]:
        statement = select(Offer).where(Offer.referral_id == referral_id).order_by(Offer.offered_at)
        return list(self._session.scalars(statement))

    def pending_for(self, referral_id: str) -> list[Offer]:
        statement = select(Offer).where(Offer.referral_id == referral_id, Offer.status == "pending")
        return list(self._session.scalars(statement))

    def providers_offered(self, referral_id: str) -> Sequence[str]:
        return self._session.scalars(select(Offer.provider_id).where(Offer.referral_id == referral_id)).all()

    def due(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        statement = (
            select(Offer.id, Offer.referral_id)
            .where(Offer.status == "pending", Offer.respond_by <= now)
            .order_by(Offer.respond_by)
            .limit(limit)
        )
        return [(offer_id, referral_id) for offer_id, referral_id in self._session.execute(statement).all()]


class SqlProviders(Providers):
    def __init__(self, session: Session):
        self._session = session

    def add(self, provider: Provider) -> None:
        self._session.add(provider)

    def get(self, provider_id: str, *, lock: bool = False) -> Provider | None:
        return self._session.get(Provider, provider_id, with_for_update=lock or None)

    def directory(self) -> list[ProviderEntry]:
        return [ProviderEntry(*row) for row in self._session.execute(_DIRECTORY).tuples()]


class SqlAgencies(Agencies):
    def __init__(self, session: Session):
        self._session = session

    def add(self, agency: Agency) -> None:
        self._session.add(agency)

    def get(self, org_id: str) -> Agency | None:
        return self._session.get(Agency, org_id)

    def covering(self, code: str, *, kind: str) -> list[Agency]:
        # The codes are a JSON list: matched here, not with one dialect's JSON operators (SQLite in dev). The
        # directory holds a few hundred agencies at most.
        of_kind = self._session.scalars(select(Agency).where(Agency.kind == kind).order_by(Agency.org_id))
        return [agency for agency in of_kind if code in agency.local_authority_codes]


class SqlEscalations(Escalations):
    def __init__(self, session: Session):
        self._session = session

    def add(self, escalation: Escalation) -> None:
        self._session.add(escalation)

    def open_for(self, referral_id: str) -> list[Escalation]:
        statement = select(Escalation).where(Escalation.referral_id == referral_id, Escalation.resolved_at.is_(None))
        return list(self._session.scalars(statement))


class SqlDisclosures(Disclosures):
    def __init__(self, session: Session):
        self._session = session

    def add(self, disclosure: Disclosure) -> None:
        self._session.add(disclosure)

    def of(self, referral_id: str) -> list[Disclosure]:
        statement = select(Disclosure).where(Disclosure.referral_id == referral_id).order_by(Disclosure.id)
        return list(self._session.scalars(statement))

    def recorded(self, referral_id: str, recipient_org: str, purpose: str) -> bool:
        wanted = (referral_id, recipient_org, purpose)
        # One this transaction added is still in the session; the rest are looked up without flushing first, so
        # the referral's changes are written once, at commit, not also here.
        if any(
            isinstance(row, Disclosure) and (row.referral_id, row.recipient_org, row.purpose) == wanted
            for row in self._session.new
        ):
            return True
        with self._session.no_autoflush:
            found = self._session.scalars(
                _RECORDED, {"referral_id": referral_id, "recipient_org": recipient_org, "purpose": purpose}
            )
            return found.first() is not None


_RECORDED = (
    select(Disclosure.id)
    .where(
        Disclosure.referral_id == bindparam("referral_id"),
        Disclosure.recipient_org == bindparam("recipient_org"),
        Disclosure.purpose == bindparam("purpose"),
    )
    .limit(1)
)


class SqlErasures(Erasures):
    def __init__(self, session: Session):
        self._session = session

    def add(self, erasure: Erasure) -> None:
        self._session.add(erasure)

    def of_referral(self, referral_id: str) -> Erasure | None:
        return self._session.scalars(select(Erasure).where(Erasure.referral_id == referral_id)).first()

    def get(self, erasure_id: str, *, lock: bool = False) -> Erasure | None:
        return self._session.get(Erasure, erasure_id, with_for_update=lock or None)

    def forget_stored(self, referral_id: str) -> None:
        # A referral id is a random UUID: where it appears, the row is about that referral. A stored body is
        # sealed: stored_naming opens each (at most TTL of them) to look.
        doomed = stored_naming(self._session, IdempotencyKey, [referral_id.encode()])
        if doomed:
            self._session.execute(delete(IdempotencyKey).where(IdempotencyKey.id.in_(doomed)))
        self._session.execute(delete(Outbox).where(Outbox.payload.like(f"%{referral_id}%")))
        data_keys(self._session).destroy(referral_id)


class SqlRectifications(Rectifications):
    def __init__(self, session: Session):
        self._session = session

    def add(self, rectification: Rectification) -> None:
        self._session.add(rectification)


class SqlDutyToNotifyRecords(DutyToNotifyRecords):
    def __init__(self, session: Session):
        self._session = session

    def add(self, record: DutyToNotifyRecord) -> None:
        self._session.add(record)


class SqlConsentRecords(ConsentRecords):
    def __init__(self, session: Session):
        self._session = session

    def add(self, record: ConsentRecord) -> None:
        self._session.add(record)

    def of(self, referral_id: str) -> list[ConsentRecord]:
        statement = (
            select(ConsentRecord)
            .where(ConsentRecord.referral_id == referral_id)
            .order_by(ConsentRecord.obtained_at, ConsentRecord.recorded_at, ConsentRecord.id)
        )
        return list(self._session.scalars(statement))
