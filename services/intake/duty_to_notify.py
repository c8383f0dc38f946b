"""The Duty to Notify: which rule, if any, obliges the referring authority to notify, and what the anonymous
notification for statistics may hold. Pure: no Flask, no SQLAlchemy.

The rules ship as `duty_to_notify_rules.csv`, one row per statute, each citing its source: a rule applies to
a referral from an organisation of one of its `org_kinds` about a person found in one of its `regions`, on
or after `in_force_from` (empty: not in force, or its commencement could not be verified).

Modern Slavery Act 2015 s52(3): a notification about an adult "may not include information that identifies
the person or enables the person to be identified (either by itself or in combination with other
information)". So the record holds statistical codes only (no name, date of birth, contact, free text,
referral id, external reference or hash of the body), and its date is the month of the referral, never a
timestamp: a month is what quarterly statistics need, and one record among a month's cannot be joined to a
referral by its time of arrival.

What this does not hide: the record is written in the referral's transaction (one POST is all or nothing), so
someone reading PostgreSQL's system columns (xmin, ctid) could still pair the two rows; the tables' own
columns cannot. Moving the records to a store of their own, or to counts, would close that too.
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

SHIPPED_RULES = Path(__file__).resolve().parent / "duty_to_notify_rules.csv"


@dataclass(frozen=True)
class DutyRule:
    id: str
    regions: frozenset[str]
    org_kinds: frozenset[str]
    in_force_from: date | None  # None: not in force (or its commencement is not verified)
    source: str
    note: str

    def covers(self, org_kind: str, region: str, on: date) -> bool:
        in_force = self.in_force_from is not None and on >= self.in_force_from
        return in_force and org_kind in self.org_kinds and region in self.regions


def parse_rules(text: str) -> tuple[DutyRule, ...]:
    rules = []
    for row in csv.DictReader(io.StringIO(text)):
        rules.append(
            DutyRule(
                id=row["id"],
                regions=frozenset(row["regions"].split()),
                org_kinds=frozenset(row["org_kinds"].split()),
                in_force_from=date.fromisoformat(row["in_force_from"]) if row["in_force_from"] else None,
                source=row["source"],
                note=row["note"],
            )
        )
    return tuple(rules)


def load_rules(path: Path = SHIPPED_RULES) -> tuple[DutyRule, ...]:
    return parse_rules(path.read_text(encoding="utf-8"))


@functools.cache
def shipped_rules() -> tuple[DutyRule, ...]:
    """The shipped table, read once on first use (never at import)."""
    return load_rules()


def applicable_rule(org_kind: str, region: str, on: date, rules: Iterable[DutyRule] | None = None) -> DutyRule | None:
    """The rule (of `rules`, else the shipped table) that obliges a referrer of this org kind to notify about a
    person found in this region on this day, or None."""
    return next((rule for rule in (rules or shipped_rules()) if rule.covers(org_kind, region, on)), None)


def month_of(moment: datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


def notification(body: dict[str, Any], *, rule: DutyRule, org_kind: str, referred_at: datetime) -> dict[str, Any]:
    """The anonymous notification's fields, from a validated referral body: what the s52 statistics count
    (nationality, sex, exploitation, where, who notified, the month) and nothing else."""
    subject, location = body["subject"], body["location"]
    exploitation = body.get("exploitation", [])
    return {
        "rule": rule.id,
        "notifying_authority_kind": org_kind,
        "notified_month": month_of(referred_at),
        "region": location["region"],
        "local_authority": location.get("local_authority"),
        "nationality": subject.get("nationality", "unknown"),
        "sex": subject.get("sex", "unknown"),
        "exploitation_types": sorted({e["type"] for e in exploitation}),
        "exploitation_locations": sorted({e.get("location", "unknown") for e in exploitation}),
        "exploited_as_child": any(e.get("as_child") for e in exploitation),
    }
