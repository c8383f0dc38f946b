"""intake's unit of work: its repositories, and the events its referrals recorded, kept or discarded together.

A `Referral` records the event of each thing that happens to it (models.py); the unit stages them all,
in the order they were recorded, when it commits (cosmicpython's `collect_new_events`), so no use case can
change a referral and forget to say so. The real unit is `SqlIntakeUnitOfWork`; unit tests use
tests/support/fake_intake.py.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from contracts import events
from services.intake import recipients
from services.intake.models import Inbox, Outbox
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
    SqlAgencies,
    SqlConsentRecords,
    SqlDisclosures,
    SqlDutyToNotifyRecords,
    SqlErasures,
    SqlEscalations,
    SqlOffers,
    SqlProviders,
    SqlRectifications,
    SqlReferrals,
)
from shared.uow import SqlUnitOfWork, UnitOfWork


class IntakeUnitOfWork(UnitOfWork):
    referrals: Referrals
    offers: Offers
    providers: Providers
    escalations: Escalations
    disclosures: Disclosures
    duty_to_notify: DutyToNotifyRecords
    consents: ConsentRecords
    agencies: Agencies
    erasures: Erasures
    rectifications: Rectifications

    def end_event(self) -> None:
        """In a consumer's batch, each event's recorded events are staged as its handler returns, while its trace
        context is current: the outbox rows carry that event's trace, not the batch's last."""
        self.stage_recorded()

    def stage_recorded(self) -> None:
        """Stage every event the unit's referrals recorded, once each."""
        for referral in self.referrals.seen:
            recorded, referral.events = referral.events, []
            for data in recorded:
                self.stage(data)
            if any(isinstance(data, events.ReferralNews) for data in recorded):  # notifications' webhooks
                new = any(isinstance(data, events.ReferralReceived) for data in recorded)
                recipients.told_notifications(self, referral.id, first=new)


IntakeUnits = Callable[[], IntakeUnitOfWork]


class SqlIntakeUnitOfWork(SqlUnitOfWork, IntakeUnitOfWork):
    outbox_table = Outbox
    inbox_table = Inbox

    def open(self, session: Session) -> None:
        self.referrals = SqlReferrals(session)
        self.offers = SqlOffers(session)
        self.providers = SqlProviders(session)
        self.escalations = SqlEscalations(session)
        self.disclosures = SqlDisclosures(session)
        self.duty_to_notify = SqlDutyToNotifyRecords(session)
        self.consents = SqlConsentRecords(session)
        self.agencies = SqlAgencies(session)
        self.erasures = SqlErasures(session)
        self.rectifications = SqlRectifications(session)

    def commit(self) -> None:
        try:
            self.stage_recorded()  # its flush is where a uniqueness rule speaks
            super().commit()
        except IntegrityError as exc:
            if not _unique_violation(exc):
                raise
            raise Conflict() from exc


def _unique_violation(exc: IntegrityError) -> bool:
    """PostgreSQL's unique_violation (SQLSTATE 23505), or SQLite's UNIQUE constraint."""
    cause = exc.orig
    return getattr(cause, "sqlstate", None) == "23505" or getattr(cause, "sqlite_errorname", None) == (
        "SQLITE_CONSTRAINT_UNIQUE"
    )
