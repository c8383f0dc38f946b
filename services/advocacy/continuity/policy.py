"""NRM durations as versioned policy data: (key, value, unit, region, effective-from) rows.

The table ships as `services/advocacy/nrm_policy.csv`; a deployment overrides or adds rows by
configuration (`NRM_POLICY` and `NRM_POLICY_FILE`, see `AdvocacyConfig`). Policy changes over time
(the recovery period went from 45 to 30 days on 2022-12-13) and by nation (Scotland: 90 days), so every
lookup names the date the rule is applied on and the region: a decision made before a change keeps the
rule in force on its date (DESIGN 2). Pure: no Flask, no SQLAlchemy; reading the file is `load_policy`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

SHIPPED_TABLE = Path(__file__).resolve().parent.parent / "nrm_policy.csv"
ANY_REGION = "*"
UNITS = ("days", "working_days")
EARLIEST = date(1900, 1, 1)

# The keys the clock rules read; a table lacking one is refused when it is loaded, not when a clock needs it.
KEYS = (
    "rg_decision",
    "recovery_period",
    "cg_not_before",
    "move_on",
    "exit_period",
    "reconsideration_window",
    "turning_18_notice",
    "clock_notice",
    # The no-contact rule (casework.contacts): practice guidance, not statute.
    "no_contact_adult",
    "no_contact_child",
)


class PolicyError(ValueError):
    """A policy row or override is malformed, or a rule has no row in force."""


@dataclass(frozen=True)
class PolicyRow:
    key: str
    value: int
    unit: str
    region: str
    effective_from: date
    note: str = ""
    overridden: bool = False  # came from configuration rather than the shipped table

    @property
    def version(self) -> str:
        """What a clock records about the rule it was computed with, e.g. `recovery_period@*:2022-12-13`."""
        origin = "+config" if self.overridden else ""
        return f"{self.key}@{self.region}:{self.effective_from.isoformat()}{origin}"


@dataclass(frozen=True)
class Duration:
    value: int
    unit: str
    version: str


class Policy:
    """Lookup: configuration rows win over shipped rows; then a row for the region wins over `*`; then the
    newest row whose effective-from is on or before the date the rule is applied on."""

    def __init__(self, rows: Iterable[PolicyRow], overrides: Iterable[PolicyRow] = ()):
        self.rows = tuple(rows)
        self.overrides = tuple(overrides)
        missing = [key for key in KEYS if not any(row.key == key for row in self.rows + self.overrides)]
        if missing:
            raise PolicyError(f"the policy table has no row for {', '.join(missing)}")

    def duration(self, key: str, *, on: date, region: str | None) -> Duration:
        for rows in (self.overrides, self.rows):
            row = _in_force(rows, key, on, normalise_region(region))
            if row is not None:
                return Duration(row.value, row.unit, row.version)
        raise PolicyError(f"no {key} rule in force on {on.isoformat()} for region {region or ANY_REGION}")

    def days(self, key: str, *, on: date, region: str | None) -> int:
        found = self.duration(key, on=on, region=region)
        if found.unit != "days":
            raise PolicyError(f"{key} is in {found.unit}, not days")
        return found.value


def normalise_region(region: str | None) -> str:
    return (region or ANY_REGION).strip().lower() or ANY_REGION


def _in_force(rows: Iterable[PolicyRow], key: str, on: date, region: str) -> PolicyRow | None:
    candidates = [r for r in rows if r.key == key and r.region in (region, ANY_REGION) and r.effective_from <= on]
    if not candidates:
        return None
    return max(candidates, key=lambda r: (r.region != ANY_REGION, r.effective_from))


def parse_table(text: str, *, overridden: bool = False) -> list[PolicyRow]:
    """Rows from CSV text with the header `key,value,unit,region,effective_from[,note]`."""
    reader = csv.DictReader(io.StringIO(text))
    rows = []
    for number, record in enumerate(reader, start=2):
        try:
            rows.append(
                _row(
                    record["key"],
                    record["value"],
                    record.get("unit") or "days",
                    record.get("region") or ANY_REGION,
                    record.get("effective_from") or "",
                    note=record.get("note") or "",
                    overridden=overridden,
                )
            )
        except (KeyError, TypeError, PolicyError) as exc:
            raise PolicyError(f"policy table line {number}: {exc}") from None
    return rows


def parse_overrides(raw: str) -> list[PolicyRow]:
    """`NRM_POLICY`: `key[@region][:YYYY-MM-DD]=value[unit]` items separated by `;` or `,`, for example
    `exit_period=21;recovery_period@wales:2027-04-01=40;rg_decision=10working_days`."""
    rows = []
    for item in (part.strip() for part in raw.replace(",", ";").split(";")):
        if not item:
            continue
        name, sep, value = item.partition("=")
        if not sep:
            raise PolicyError(f"{item!r}: expected key=value")
        name, _, since = name.partition(":")
        key, _, region = name.partition("@")
        digits = value.strip().rstrip("abcdefghijklmnopqrstuvwxyz_")
        unit = value.strip()[len(digits) :] or "days"
        rows.append(_row(key, digits, unit, region or ANY_REGION, since or EARLIEST.isoformat(), overridden=True))
    return rows


def _row(key: str, value: str, unit: str, region: str, since: str, *, note: str = "", overridden: bool) -> PolicyRow:
    key = key.strip()
    if key not in KEYS:
        raise PolicyError(f"unknown policy key {key!r} (known: {', '.join(KEYS)})")
    try:
        amount = int(str(value).strip())
        effective_from = date.fromisoformat(since.strip())
    except ValueError:
        raise PolicyError(f"{key}: value must be a whole number and effective_from a YYYY-MM-DD date") from None
    if amount < 0:
        raise PolicyError(f"{key}: value must not be negative")
    if unit.strip() not in UNITS:
        raise PolicyError(f"{key}: unit must be one of {', '.join(UNITS)}")
    return PolicyRow(key, amount, unit.strip(), normalise_region(region), effective_from, note, overridden)


def load_policy(*, overrides: str = "", extra_file: str = "", shipped: Mapping[str, str] | None = None) -> Policy:
    """The shipped table plus configuration. `extra_file` rows (same CSV shape) and `overrides` both win
    over shipped rows. `shipped` lets tests pass the table's text instead of reading the file."""
    text = (shipped or {}).get("table") or SHIPPED_TABLE.read_text(encoding="utf-8")
    configured = parse_table(Path(extra_file).read_text(encoding="utf-8"), overridden=True) if extra_file else []
    return Policy(parse_table(text), configured + parse_overrides(overrides))
