"""The NRM clock rules: which deadlines a referral, a decision or a birthday starts, from the policy table.

Pure: dates in, `ClockSpec`s out. Dates are calendar days in Europe/London (`wall_clock.today`). Each clock
has a *nature* (issue 12, DESIGN 2 and 5), and only a deadline can be missed:

- `deadline`: someone must act by the due date (the RG decision expected, an 18th birthday's re-consent):
  `running`, `due_soon` from its notice date, `breached` the day after its due date, or `stopped`.
- `minimum`: nothing may happen before the due date (the end of the minimum recovery period, the earliest
  CG decision): `running`, then `reached`. Support continues until the CG decision, whichever is later
  (Modern Slavery Act 2015 s50A; Hansard HC, 13 Dec 2022), so a minimum is never breached.
- `support_end`: support stops on the due date unless extended (move-on, exit period): `running`, then
  `ended`; its whole period is notice (as the Homelessness Reduction Act 2017's 56 days are), so it is
  due soon from the day it starts.

A clock stopped by what it waited for (a decision, a completed transition) is `stopped`, whatever its nature.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from services.advocacy.continuity.bank_holidays import add_working_days
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
RECONSIDERATION_WINDOW = "reconsideration_window"  # the last day to request reconsideration of a negative decision
CLOCK_KINDS = (RG_DECISION, RECOVERY_PERIOD, CG_NOT_BEFORE, MOVE_ON, EXIT_PERIOD, TURNING_18, RECONSIDERATION_WINDOW)

# Clock natures: what the due date means.
DEADLINE = "deadline"  # someone must act by then
MINIMUM = "minimum"  # nothing may happen before
SUPPORT_END = "support_end"  # support stops then unless extended
NATURES = (DEADLINE, MINIMUM, SUPPORT_END)
NATURE_OF = {
    RG_DECISION: DEADLINE,
    TURNING_18: DEADLINE,  # a transition's planned date: re-consent and adult services by the birthday
    RECONSIDERATION_WINDOW: DEADLINE,  # a reconsideration must be requested by then
    RECOVERY_PERIOD: MINIMUM,
    CG_NOT_BEFORE: MINIMUM,
    MOVE_ON: SUPPORT_END,
    EXIT_PERIOD: SUPPORT_END,
}
# The natures that announce their notice period (`clock.due_soon`), and the one that can be breached.
ANNOUNCED = (DEADLINE, SUPPORT_END)
BREACHABLE = (DEADLINE,)

# A clock's states (GET /v1/cases/{id}/nrm), by nature; `stopped` is open to all.
RUNNING, DUE_SOON, BREACHED, STOPPED, REACHED, ENDED = "running", "due_soon", "breached", "stopped", "reached", "ended"
STATES = {
    DEADLINE: (RUNNING, DUE_SOON, BREACHED, STOPPED),
    MINIMUM: (RUNNING, REACHED, STOPPED),
    SUPPORT_END: (RUNNING, ENDED, STOPPED),
}

RG, CG = "rg", "cg"
STAGES = (RG, CG)
POSITIVE, NEGATIVE = "positive", "negative"
OUTCOMES = (POSITIVE, NEGATIVE)

# What recording a decision stops: the clocks that were waiting for it.
# A later decision at a stage (on reconsideration) also ends the window to ask for one.
STOPPED_BY_DECISION = {
    RG: (RG_DECISION, RECONSIDERATION_WINDOW),
    CG: (RECOVERY_PERIOD, CG_NOT_BEFORE, RECONSIDERATION_WINDOW),
}

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

    @property
    def nature(self) -> str:
        return nature_of(self.kind)


def nature_of(kind: str) -> str:
    return NATURE_OF[kind]


def _notice(policy: Policy, due_on: date, *, on: date, region: str | None, key: str = "clock_notice") -> date:
    return due_on - timedelta(days=policy.days(key, on=on, region=region))


def _spec(policy: Policy, kind: str, start: date, region: str | None, basis: str) -> ClockSpec:
    found = policy.duration(kind, on=start, region=region)
    working = found.unit == "working_days"
    due = add_working_days(start, found.value, region) if working else start + timedelta(days=found.value)
    notice = start if NATURE_OF[kind] == SUPPORT_END else _notice(policy, due, on=start, region=region)
    return ClockSpec(kind, start, due, notice, found.version, basis)


def on_nrm_referral(policy: Policy, referred_on: date, region: str | None) -> list[ClockSpec]:
    """An NRM referral starts the wait for a reasonable-grounds decision."""
    return [_spec(policy, RG_DECISION, referred_on, region, f"NRM referral on {referred_on.isoformat()}")]


def on_decision(policy: Policy, stage: str, outcome: str, decided_on: date, region: str | None) -> list[ClockSpec]:
    """The clocks a decision starts. A negative RG or CG starts the window to request its reconsideration
    (30 calendar days, a deadline: statutory guidance, reconsideration section); a negative CG also starts
    the exit period."""
    basis = f"{outcome} {stage.upper()} on {decided_on.isoformat()}"
    if stage == RG and outcome == POSITIVE:
        return [
            _spec(policy, RECOVERY_PERIOD, decided_on, region, basis),
            _spec(policy, CG_NOT_BEFORE, decided_on, region, basis),
        ]
    if stage == RG and outcome == NEGATIVE:
        return [_spec(policy, RECONSIDERATION_WINDOW, decided_on, region, basis)]
    if stage == CG and outcome == POSITIVE:
        return [_spec(policy, MOVE_ON, decided_on, region, basis)]
    if stage == CG and outcome == NEGATIVE:
        return [
            _spec(policy, EXIT_PERIOD, decided_on, region, basis),
            _spec(policy, RECONSIDERATION_WINDOW, decided_on, region, basis),
        ]
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


def state(nature: str, *, due_on: date, notice_on: date, stopped: bool, today: date) -> str:
    """A clock's state on `today`, by its nature: only a deadline is ever `breached`."""
    if stopped:
        return STOPPED
    if nature == MINIMUM:
        return REACHED if today >= due_on else RUNNING  # from the due date on, it may happen
    if nature == SUPPORT_END:
        return ENDED if is_breached(due_on, today) else RUNNING  # the due date is the last day of support
    if is_breached(due_on, today):
        return BREACHED
    return DUE_SOON if is_due_soon(notice_on, due_on, today) else RUNNING


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
