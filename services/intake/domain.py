"""Intake's rules as pure functions: who a referral is for, which pathway it takes, what a provider is told,
what may happen to it next (who may take it is routing.py's).

Law and policy (England and Wales):
- A child (under 18, or age disputed: presume a child) is referred into the NRM without needing consent.
  https://www.gov.uk/government/publications/human-trafficking-victims-referral-and-assessment-forms
- An adult must consent to an NRM referral. For an adult who does not, an authority the Duty to Notify binds
  (duty_to_notify.py: Modern Slavery Act 2015 s52, England and Wales) makes an anonymous notification: the
  referral is pathway `duty_to_notify`, or `advocacy_only` when the adult consents to advocacy; where no
  duty applies it is `not_notified`.
- Advocacy needs the adult's consent; a child is always routed. A referral that is routed carries the
  details the person agreed to share; one that is only recorded for an adult without NRM consent keeps
  none of them (`anonymous`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

ADULT_AGE = 18

# What a referral recorded for an adult without NRM consent keeps: a whitelist, the same statistical facts
# the anonymous notification holds (duty_to_notify.notification), the consent given and what decides a
# coordinator's alert, and the referrer's role. Names, aliases, date of birth, age, contact, languages, the
# referrer's name and contact and free text (the narrative, risk notes) are all dropped.
ANONYMOUS_SUBJECT = ("sex", "nationality")
ANONYMOUS_EXPLOITATION = ("type", "location", "as_child", "county_lines")
ANONYMOUS_LOCATION = ("region", "local_authority")
ANONYMOUS_RISK = ("immediate_danger", "re_trafficking_risk")
ANONYMOUS_TOP = ("referred_at", "consent")
# Of the consent, what was agreed and when: `obtained_by` is free text that can name the officer, so the
# consent records of such a referral say its organisation instead (consent.from_submission's default).
ANONYMOUS_CONSENT = ("nrm_referral", "advocacy", "data_sharing", "obtained_at", "interpreter_used")
# Of the referrer, the role (with the referral's org_id: who notified); never the officer's name or contact.
ANONYMOUS_REFERRER = ("role",)

# The pathways of an adult without NRM consent under a Duty to Notify rule: an anonymous notification is made.
NOTIFIED_PATHWAYS = frozenset({"duty_to_notify", "advocacy_only"})


class InvalidState(Exception):
    """The referral is in a state where this cannot be done to it (e.g. withdrawing a withdrawn one)."""


class CannotOffer(Exception):
    """The referral cannot be offered now: it is allocated, withdrawn or recorded, or an offer is waiting."""


class ReferralErased(Exception):
    """The referral's personal data was erased (services.intake.erasure): nothing more about it (410 Gone)."""


class ReferralRejected(Exception):
    """The referral breaks a rule that the schema alone cannot see. `field` is the path at fault."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Pathway:
    pathway: str  # "nrm" | "duty_to_notify" | "advocacy_only" | "not_notified"
    is_child: bool
    routed: bool  # offered to an advocacy provider, or only recorded

    @property
    def initial_status(self) -> str:
        return "received" if self.routed else "recorded"

    @property
    def duty_to_notify_recorded(self) -> bool:
        """An anonymous Duty to Notify record is made for it (stored apart, unlinked)."""
        return self.pathway in NOTIFIED_PATHWAYS

    @property
    def anonymous(self) -> bool:
        """Only recorded, for an adult without NRM consent: nothing that identifies the person is kept."""
        return not self.routed and self.pathway != "nrm"


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


def decide_pathway(child: bool, consent: dict[str, Any] | None, *, duty_to_notify: bool) -> Pathway:
    """`duty_to_notify`: a Duty to Notify rule binds this referrer where the person was found
    (duty_to_notify.applicable_rule). A child is always referred into the NRM and routed; an adult with NRM
    consent takes the NRM pathway, routed if they consent to advocacy; without NRM consent, advocacy consent
    routes them (`advocacy_only` under the duty, else `not_notified`) and without it they are only recorded
    (`duty_to_notify` under the duty, else `not_notified`)."""
    if child:
        return Pathway(pathway="nrm", is_child=True, routed=True)
    if consent is None:
        raise ReferralRejected("consent", "consent is required for an adult")
    routed = bool(consent.get("advocacy"))
    if consent.get("nrm_referral"):
        pathway = "nrm"
    elif not duty_to_notify:
        pathway = "not_notified"
    else:
        pathway = "advocacy_only" if routed else "duty_to_notify"
    return Pathway(pathway=pathway, is_child=False, routed=routed)


def without_identifiers(body: dict[str, Any]) -> dict[str, Any]:
    """What a referral only recorded for an adult without NRM consent keeps (ANONYMOUS_*): nothing that
    identifies the person, nor anything the anonymous notification does not hold beyond the consent."""
    kept: dict[str, Any] = {name: copy.deepcopy(body[name]) for name in ANONYMOUS_TOP if name in body}
    kept["subject"] = _only(body.get("subject") or {}, ANONYMOUS_SUBJECT)
    kept["location"] = _only(body.get("location") or {}, ANONYMOUS_LOCATION)
    kept["exploitation"] = [_only(e, ANONYMOUS_EXPLOITATION) for e in body.get("exploitation", [])]
    if isinstance(body.get("risk"), dict):
        kept["risk"] = _only(body["risk"], ANONYMOUS_RISK)
    if isinstance(body.get("consent"), dict):
        kept["consent"] = _only(body["consent"], ANONYMOUS_CONSENT)
    if isinstance(body.get("referrer"), dict) and (referrer := _only(body["referrer"], ANONYMOUS_REFERRER)):
        kept["referrer"] = referrer
    return kept


def _only(record: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {name: record[name] for name in names if name in record}


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
