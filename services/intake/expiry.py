"""Expiring offers whose deadline passed, and moving each referral on to the next provider.

Safe to run in every intake worker at once: each offer expires exactly once however many sweep together.
Its referral is claimed with SKIP LOCKED (another worker that has it is dealing with it), and the offer is
re-read under that lock before anything is written.
"""

from __future__ import annotations

import logging
from datetime import datetime

from services.intake.offering import Offering
from services.intake.uow import IntakeUnits

log = logging.getLogger(__name__)


class Expiry:
    def __init__(self, units: IntakeUnits, offering: Offering):
        self._units = units
        self._offering = offering

    def expire_due(self, now: datetime, limit: int = 200) -> int:
        """Expire up to `limit` pending offers due by `now`, one unit of work each; returns how many."""
        with self._units() as uow:
            due = uow.offers.due(now, limit)
        expired = 0
        for offer_id, referral_id in due:
            with self._units() as uow:
                referral = uow.referrals.claim(referral_id)
                offer = uow.offers.get(offer_id) if referral else None
                if referral is None or offer is None or not offer.is_due(now):
                    continue
                referral.expire(offer, now)
                self._offering.offer_next(uow, referral, escalation_reason="none_accepted")
                expired += 1
        if expired:
            log.info("offers expired", extra={"count": expired})
        return expired
