"""Intake's rules as pure functions: who a referral is for, which pathway it takes, what a provider is told,
what may happen to it next (who may take it is routing.py's).

Law and policy (England and Wales):
- A child (under 18, or age disputed: presume a child) is referred into the NRM without needing consent.
  https://www.gov.uk/government/publications/human-trafficking-victims-referral-and-assessment-forms
- An adult must consent to an NRM referral. An adult who does not is a Duty to Notify notification, which
  by law carries no identifying details (Modern Slavery Act 2015, s.52; the Duty to Notify guidance).
- Advocacy needs the adult's consent; a child is always routed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

ADULT_AGE = 18

# What a Duty to Notify must never hold: the survivor's names, aliases, date of birth and contact details.
# Free text can carry all of those, so the narrative and risk notes are dropped too.
DTN_SUBJECT_IDENTIFIERS = ("given_name", "family_name", "aliases", "date_of_birth", "safe_contact")
DTN_FREE_TEXT = ("narrative",)


class InvalidState(Exception):
    """The referral is in a state where this cannot be done to it (e.g. withdrawing a withdrawn one)."""


class CannotOffer(Exception):
    """The referral cannot be offered now: it is allocated, withdrawn or recorded, or an offer is waiting."""


class ReferralRejected(Exception):
    """The referral breaks a rule that the schema alone cannot see. `field` is the path at fault."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Pathway:
    pathway: str  # "nrm" | "duty_to_notify"
    is_child: bool
    routed: bool  # offered to an advocacy provider, or only recorded

    @property
    def initial_status(self) -> str:
        return "received" if self.routed else "recorded"


def age_on(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def is_child(subject: dict[str, Any], referred_at: datetime) -> bool:
    """Under 18 at referral, or age disputed (presumed a child until assessed)."""
    if subject.get("age_disputed"):
        return True
    born = subject.get("date_of_birth")
    if born is not None:
        return age_on(born, referred_at.date()) < ADULT_AGE
    estimate = subject.get("age_estimate")
    if estimate is None:
        raise ReferralRejected("subject.date_of_birth", "date_of_birth or age_estimate is required unless age_disputed")
    return int(estimate) < ADULT_AGE


def decide_pathway(child: bool, consent: dict[str, Any] | None) -> Pathway:
    if child:
        return Pathway(pathway="nrm", is_child=True, routed=True)
    if consent is None:
        raise ReferralRejected("consent", "consent is required for an adult")
    pathway = "nrm" if consent.get("nrm_referral") else "duty_to_notify"
    return Pathway(pathway=pathway, is_child=False, routed=bool(consent.get("advocacy")))


def without_identifiers(body: dict[str, Any]) -> dict[str, Any]:
    """The Duty to Notify form of a referral: nothing that identifies the person survives."""
    kept = copy.deepcopy(body)
    subject = kept.get("subject", {})
    for name in DTN_SUBJECT_IDENTIFIERS:
        subject.pop(name, None)
    for name in DTN_FREE_TEXT:
        kept.pop(name, None)
    if isinstance(kept.get("risk"), dict):
        kept["risk"].pop("notes", None)
    return kept


@dataclass(frozen=True)
class ResponsePolicy:
    """How long a provider has to answer an offer: a default, and per-region overrides (hours)."""

    default_hours: float = 24.0
    by_region: dict[str, float] = field(default_factory=dict)

    def respond_by(self, offered_at: datetime, region: str) -> datetime:
        return offered_at + timedelta(hours=self.by_region.get(region, self.default_hours))


def offer_summary(body: dict[str, Any], pathway: Pathway) -> dict[str, Any]:
    """What a provider needs to decide on an offer, and nothing that identifies the person."""
    subject, risk, location = body["subject"], body.get("risk") or {}, body["location"]
    return {
        "is_child": pathway.is_child,
        "pathway": pathway.pathway,
        "region": location["region"],
        "local_authority": location.get("local_authority"),
        "languages": list(subject.get("languages", [])),
        "interpreter_needed": bool(subject.get("interpreter_needed")),
        "sex": subject.get("sex"),
        "exploitation_types": sorted({e["type"] for e in body.get("exploitation", [])}),
        "needs": list(body.get("needs", [])),
        "immediate_danger": bool(risk.get("immediate_danger")),
        "re_trafficking_risk": risk.get("re_trafficking_risk"),
    }


WITHDRAWABLE = frozenset({"received", "offered", "allocated", "escalated", "recorded"})
OFFERABLE = frozenset({"received", "escalated", "offered"})


def can_withdraw(status: str) -> bool:
    return status in WITHDRAWABLE
