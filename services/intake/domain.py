"""Intake's rules as pure functions: who a referral is for, which pathway it takes, who may take it.

Law and policy (England and Wales):
- A child (under 18, or age disputed: presume a child) is referred into the NRM without needing consent.
  https://www.gov.uk/government/publications/human-trafficking-victims-referral-and-assessment-forms
- An adult must consent to an NRM referral. An adult who does not is a Duty to Notify notification, which
  by law carries no identifying details (Modern Slavery Act 2015, s.52; the Duty to Notify guidance).
- Advocacy needs the adult's consent; a child is always routed.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

ADULT_AGE = 18

# What a Duty to Notify must never hold: the survivor's names, aliases, date of birth and contact details.
# Free text can carry all of those, so the narrative and risk notes are dropped too.
DTN_SUBJECT_IDENTIFIERS = ("given_name", "family_name", "aliases", "date_of_birth", "safe_contact")
DTN_FREE_TEXT = ("narrative",)


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
class ProviderEntry:
    id: str
    regions: Sequence[str]
    serves: Sequence[str]  # "adult" | "child"
    accepting: bool
    capacity: int  # spare places, as the provider's own instance last reported them
    languages: Sequence[str] = ()
    sexes: Sequence[str] | None = None  # a sex-specific service declares whom it serves; None serves everyone


@dataclass(frozen=True)
class RoutingNeeds:
    """What routing knows of a referral: nothing that identifies the person."""

    region: str
    child: bool
    languages: Sequence[str] = ()
    sex: str | None = None
    high_risk: bool = False  # re-trafficking risk is high


def eligible(provider: ProviderEntry, needs: RoutingNeeds) -> bool:
    """Serves the region and the age group, is accepting, has a free place, and - when it is a
    sex-specific service - serves this person's sex."""
    return (
        provider.accepting
        and provider.capacity > 0
        and needs.region in provider.regions
        and ("child" if needs.child else "adult") in provider.serves
        and (provider.sexes is None or needs.sex in provider.sexes)
    )


def score(provider: ProviderEntry, needs: RoutingNeeds) -> tuple[int, int, int, int]:
    """Higher is better, compared in order:
    1. shares a language with the survivor: an interpreter between them is a barrier when trust is most fragile;
    2. a sex-specific service matching the survivor's sex (e.g. a women-only safe house);
    3. when the risk of re-trafficking is high, also serves regions other than where the person was found,
       so that support can continue away from the exploiters;
    4. more spare places.
    """
    return (
        int(bool(set(provider.languages) & set(needs.languages))),
        int(provider.sexes is not None and needs.sex in provider.sexes),
        int(needs.high_risk and any(region != needs.region for region in provider.regions)),
        provider.capacity,
    )


def rank_providers(
    providers: Iterable[ProviderEntry], needs: RoutingNeeds, already_offered: Iterable[str] = ()
) -> list[ProviderEntry]:
    """Eligible providers not offered this referral before, best first; ties broken by provider id."""
    skip = set(already_offered)
    candidates = [p for p in providers if p.id not in skip and eligible(p, needs)]
    return sorted(candidates, key=lambda p: (tuple(-x for x in score(p, needs)), p.id))


def choose_provider(
    providers: Iterable[ProviderEntry], needs: RoutingNeeds, already_offered: Iterable[str] = ()
) -> ProviderEntry | None:
    ranked = rank_providers(providers, needs, already_offered)
    return ranked[0] if ranked else None


def routing_needs(body: dict[str, Any], child: bool) -> RoutingNeeds:
    subject, risk = body.get("subject", {}), body.get("risk") or {}
    return RoutingNeeds(
        region=body["location"]["region"],
        child=child,
        languages=tuple(subject.get("languages", ())),
        sex=subject.get("sex"),
        high_risk=risk.get("re_trafficking_risk") == "high",
    )


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


WITHDRAWABLE = {"received", "offered", "allocated", "escalated", "recorded"}


def can_withdraw(status: str) -> bool:
    return status in WITHDRAWABLE
