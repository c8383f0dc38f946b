"""intake's fake unit of work: its repositories over dicts, and the events staged as the real one stages them
(what the unit's referrals recorded, at commit, through the real catalogue). No database.

It is its own factory (`UseCases.over(fake, policy)`), so every unit a use case opens is this one: records
stay put between units, as committed rows would. A rollback drops staged events, not record changes; the
use cases' own tests do not rely on undoing those.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from services.intake.models import (
    Agency,
    ConsentRecord,
    Disclosure,
    DutyToNotifyRecord,
    Erasure,
    Escalation,
    Offer,
    Provider,
    Rectification,
    Referral,
)
from services.intake.repositories import (
    Agencies,
    Conflict,
    ConsentRecords,
    Disclosures,
    DutyToNotifyRecords,
    Erasures,
    Escalations,
    Offers,
    Providers,
    Rectifications,
    Referrals,
)
from services.intake.routing import ProviderEntry
from services.intake.uow import IntakeUnitOfWork
from support.uow import FakeUnitOfWork


class FakeReferrals(Referrals):
    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, Referral] = {}
        self.busy: set[str] = set()  # held by another transaction: claim() skips them
        self.locked: list[str] = []  # ids in the order they were locked

    def _add(self, referral: Referral) -> None:
        for row in self.rows.values():  # the unique (org, reference) constraint
            if (row.org_id, row.external_reference) == (referral.org_id, referral.external_reference):
                raise Conflict()
        self.rows[referral.id] = referral

    def _get(self, referral_id: str, *, lock: bool) -> Referral | None:
        if lock:
            self.locked.append(referral_id)
        return self.rows.get(referral_id)

    def _claim(self, referral_id: str) -> Referral | None:
        if referral_id in self.busy:
            return None
        return self._get(referral_id, lock=True)

    def _by_reference(self, org_id: str, external_reference: str) -> Referral | None:
        found = [r for r in self.rows.values() if (r.org_id, r.external_reference) == (org_id, external_reference)]
        return found[0] if found else None


class FakeOffers(Offers):
    def __init__(self) -> None:
        self.rows: dict[str, Offer] = {}

    def add(self, offer: Offer) -> None:
        self.rows[offer.id] = offer

    def get(self, offer_id: str, *, lock: bool = False) -> Offer | None:
        return self.rows.get(offer_id)

    def of(self, referral_id: str) -> list[Offer]:
        return sorted((o for o in self.rows.values() if o.referral_id == referral_id), key=lambda o: o.offered_at)

    def pending_for(self, referral_id: str) -> list[Offer]:
        return [o for o in self.of(referral_id) if o.status == "pending"]

    def providers_offered(self, referral_id: str) -> Sequence[str]:
        return [o.provider_id for o in self.of(referral_id)]

    def due(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        due = sorted((o for o in self.rows.values() if o.is_due(now)), key=lambda o: o.respond_by or now)
        return [(o.id, o.referral_id) for o in due[:limit]]


class FakeProviders(Providers):
    def __init__(self, offers: FakeOffers) -> None:
        self.rows: dict[str, Provider] = {}
        self._offers = offers

    def add(self, provider: Provider) -> None:
        self.rows[provider.id] = provider

    def get(self, provider_id: str, *, lock: bool = False) -> Provider | None:
        return self.rows.get(provider_id)

    def directory(self) -> list[ProviderEntry]:
        waiting: dict[str, int] = {}
        for offer in self._offers.rows.values():
            if offer.status == "pending":
                waiting[offer.provider_id] = waiting.get(offer.provider_id, 0) + 1
        return [
            ProviderEntry(
                id=p.id,
                regions=p.regions,
                serves=p.serves,
                accepting=p.accepting,
                capacity=p.capacity - waiting.get(p.id, 0),
                languages=p.languages,
                sexes=p.sexes,
            )
            for p in self.rows.values()
        ]


class FakeAgencies(Agencies):
    def __init__(self) -> None:
        self.rows: dict[str, Agency] = {}

    def add(self, agency: Agency) -> None:
        self.rows[agency.org_id] = agency

    def get(self, org_id: str) -> Agency | None:
        return self.rows.get(org_id)

    def covering(self, code: str, *, kind: str) -> list[Agency]:
        found = [a for a in self.rows.values() if a.kind == kind and code in a.local_authority_codes]
        return sorted(found, key=lambda a: a.org_id)


class FakeEscalations(Escalations):
    def __init__(self) -> None:
        self.rows: list[Escalation] = []

    def add(self, escalation: Escalation) -> None:
        self.rows.append(escalation)

    def open_for(self, referral_id: str) -> list[Escalation]:
        return [e for e in self.rows if e.referral_id == referral_id and e.resolved_at is None]


class FakeDisclosures(Disclosures):
    def __init__(self) -> None:
        self.rows: list[Disclosure] = []

    def add(self, disclosure: Disclosure) -> None:
        self.rows.append(disclosure)

    def of(self, referral_id: str) -> list[Disclosure]:
        return [d for d in self.rows if d.referral_id == referral_id]


class FakeErasures(Erasures):
    def __init__(self) -> None:
        self.rows: dict[str, Erasure] = {}
        self.forgotten: list[str] = []  # referral ids whose idempotent responses and outbox rows were deleted

    def add(self, erasure: Erasure) -> None:
        if any(e.referral_id == erasure.referral_id for e in self.rows.values()):  # uq_erasures_referral
            raise Conflict()
        self.rows[erasure.id] = erasure

    def of_referral(self, referral_id: str) -> Erasure | None:
        return next((e for e in self.rows.values() if e.referral_id == referral_id), None)

    def get(self, erasure_id: str, *, lock: bool = False) -> Erasure | None:
        return self.rows.get(erasure_id)

    def forget_stored(self, referral_id: str) -> None:
        self.forgotten.append(referral_id)


class FakeRectifications(Rectifications):
    def __init__(self) -> None:
        self.rows: list[Rectification] = []

    def add(self, rectification: Rectification) -> None:
        self.rows.append(rectification)


class FakeDutyToNotifyRecords(DutyToNotifyRecords):
    def __init__(self) -> None:
        self.rows: list[DutyToNotifyRecord] = []

    def add(self, record: DutyToNotifyRecord) -> None:
        self.rows.append(record)


class FakeConsentRecords(ConsentRecords):
    def __init__(self) -> None:
        self.rows: list[ConsentRecord] = []

    def add(self, record: ConsentRecord) -> None:
        self.rows.append(record)

    def of(self, referral_id: str) -> list[ConsentRecord]:
        # sorted() is stable: records obtained at the same moment stay in the order they were added.
        mine = [r for r in self.rows if r.referral_id == referral_id]
        return sorted(mine, key=lambda r: (r.obtained_at, r.recorded_at))


class FakeIntakeUnitOfWork(FakeUnitOfWork, IntakeUnitOfWork):
    def __init__(self) -> None:
        super().__init__()
        self.referrals: FakeReferrals = FakeReferrals()
        self.offers: FakeOffers = FakeOffers()
        self.providers: FakeProviders = FakeProviders(self.offers)
        self.escalations: FakeEscalations = FakeEscalations()
        self.disclosures: FakeDisclosures = FakeDisclosures()
        self.duty_to_notify: FakeDutyToNotifyRecords = FakeDutyToNotifyRecords()
        self.consents: FakeConsentRecords = FakeConsentRecords()
        self.agencies: FakeAgencies = FakeAgencies()
        self.erasures: FakeErasures = FakeErasures()
        self.rectifications: FakeRectifications = FakeRectifications()

    def commit(self) -> None:
        self.stage_recorded()
        super().commit()

    def rollback(self) -> None:
        for referral in self.referrals.seen:
            referral.events = []
        super().rollback()

    def provider(self, provider_id: str, **entry) -> Provider:
        """Register a provider: London adults, five places, unless `entry` says otherwise."""
        fields = {"name": provider_id, "regions": ["london"], "languages": [], "serves": ["adult"]}
        fields |= {"accepting": True, "capacity": 5, "sexes": None, **entry}
        provider = Provider(id=provider_id, **fields)
        self.providers.add(provider)
        return provider
