"""The NRM clock rules: which deadlines a referral, a decision or a birthday starts, from the policy table.

Pure: dates in, `ClockSpec`s out. Dates are calendar days (UTC); a clock is *due soon* from its notice
date and *breached* once its due date has passed without the clock being stopped (DESIGN 2: RG about 5
working days after referral; recovery period after a positive RG; CG not before 30 days after RG;
move-on after a positive CG; an exit period after a negative CG; notice before an 18th birthday).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from services.advocacy.continuity.policy import Policy

ADULT_AGE = 18
DAYS_PER_YEAR = 365.25

# Clock kinds, and the policy key each is measured by.
RG_DECISION = "rg_decision"  # an RG decision is expected by then
RECOVERY_PERIOD = "recovery_period"  # the minimum recovery period after a positive RG ends
CG_NOT_BEFORE = "cg_not_before"  # the earliest date a CG decision can come: prepare for it
MOVE_ON = "move_on"  # move-on support after a positive CG ends
EXIT_PERIOD = "exit_period"  # support after a negative CG ends
TURNING_18 = "turning_18"  # the 18th birthday: re-consent and adult services in place
CLOCK_KINDS = (RG_DECISION, RECOVERY_PERIOD, CG_NOT_BEFORE, MOVE_ON, EXIT_PERIOD, TURNING_18)

RG, CG = "rg", "cg"
STAGES = (RG, CG)
POSITIVE, NEGATIVE = "positive", "negative"
OUTCOMES = (POSITIVE, NEGATIVE)

# What recording a decision stops: the clocks that were waiting for it.
STOPPED_BY_DECISION = {RG: (RG_DECISION,), CG: (RECOVERY_PERIOD, CG_NOT_BEFORE)}

# How a turning-18 date was known.
EXACT, APPROXIMATE = "exact", "approximate"


@dataclass(frozen=True)
class ClockSpec:
    kind: str
    starts_on: date
    due_on: date
    notice_on: date
    policy_version: str
    basis: str  # why the clock exists, in ids, codes and dates (never personal data)


def add_working_days(start: date, days: int) -> date:
    """Monday-to-Friday days after `start`. Bank holidays are not counted out (they differ by nation and
    year); the clock is a prompt to chase, so a day early is the safe side."""
    current, left = start, days
    while left > 0:
        current += timedelta(days=1)
        if current.weekday() < 5:
            left -= 1
    return current


def _notice(policy: Policy, due_on: date, *, on: date, region: str | None, key: str = "clock_notice") -> date:
    return due_on - timedelta(days=policy.days(key, on=on, region=region))


def _spec(policy: Policy, kind: str, start: date, region: str | None, basis: str) -> ClockSpec:
    found = policy.duration(kind, on=start, region=region)
    working = found.unit == "working_days"
    due = add_working_days(start, found.value) if working else start + timedelta(days=found.value)
    return ClockSpec(kind, start, due, _notice(policy, due, on=start, region=region), found.version, basis)


def on_nrm_referral(policy: Policy, referred_on: date, region: str | None) -> list[ClockSpec]:
    """An NRM referral starts the wait for a reasonable-grounds decision."""
    return [_spec(policy, RG_DECISION, referred_on, region, f"NRM referral on {referred_on.isoformat()}")]


def on_decision(policy: Policy, stage: str, outcome: str, decided_on: date, region: str | None) -> list[ClockSpec]:
    """The clocks a decision starts. A negative RG starts none here: the person leaves NRM support and any
    reconsideration is recorded separately."""
    basis = f"{outcome} {stage.upper()} on {decided_on.isoformat()}"
    if stage == RG and outcome == POSITIVE:
        return [
            _spec(policy, RECOVERY_PERIOD, decided_on, region, basis),
            _spec(policy, CG_NOT_BEFORE, decided_on, region, basis),
        ]
    if stage == CG and outcome == POSITIVE:
        return [_spec(policy, MOVE_ON, decided_on, region, basis)]
    if stage == CG and outcome == NEGATIVE:
        return [_spec(policy, EXIT_PERIOD, decided_on, region, basis)]
    return []


@dataclass(frozen=True)
class Birthday:
    on: date
    basis: str  # EXACT from a date of birth, APPROXIMATE from an age estimate


def eighteenth_birthday(subject: dict[str, Any], referred_at: date) -> Birthday | None:
    """The 18th birthday from the referral's subject: exact from `date_of_birth`; approximate from
    `age_estimate` (the estimated age taken as reached on the referral date, plus half a year: the
    middle of that year of age); None when neither is known (an age-disputed child without an estimate,
    or a Duty to Notify, which carries no date of birth)."""
    born = _as_date(subject.get("date_of_birth"))
    if born is not None:
        return Birthday(_add_years(born, ADULT_AGE), EXACT)
    estimate = subject.get("age_estimate")
    if isinstance(estimate, int | float) and not isinstance(estimate, bool) and 0 <= estimate < ADULT_AGE:
        years_left = ADULT_AGE - float(estimate) - 0.5
        return Birthday(referred_at + timedelta(days=round(max(years_left, 0.0) * DAYS_PER_YEAR)), APPROXIMATE)
    return None


def on_turning_18(policy: Policy, birthday: Birthday, *, region: str | None, today: date) -> ClockSpec:
    """The 18th-birthday clock: due on the birthday, with `turning_18_notice` days' notice (policy in force
    today, when the clock is set)."""
    basis = f"18th birthday ({birthday.basis}) on {birthday.on.isoformat()}"
    found = policy.duration("turning_18_notice", on=today, region=region)
    notice_on = birthday.on - timedelta(days=found.value)
    return ClockSpec(TURNING_18, today, birthday.on, notice_on, found.version, basis)


def is_due_soon(notice_on: date, due_on: date, today: date) -> bool:
    return notice_on <= today <= due_on


def is_breached(due_on: date, today: date) -> bool:
    """A due date is the last day: the clock is breached the day after."""
    return today > due_on


def start_of_day(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _add_years(born: date, years: int) -> date:
    try:
        return born.replace(year=born.year + years)
    except ValueError:  # 29 February: the birthday is taken as 1 March in a common year
        return date(born.year + years, 3, 1)


def _as_date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and value:
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None
