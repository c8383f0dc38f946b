"""Routing: which provider a referral is offered to. Pure functions over the directory as intake knows it.

A referral goes to the best eligible provider not offered it before (README, "Routing"); the ranking is
`score`'s, ties broken by provider id. Nothing here reads or writes a record: offering.py asks the unit of
work for the directory and the providers offered so far, and hands them in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


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
