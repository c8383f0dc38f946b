"""Every NRM clock rule against the shipped policy table: dates in, due dates out (DESIGN 2)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from services.advocacy.continuity import deadlines, policy
from services.advocacy.continuity.policy import PolicyError, load_policy

POLICY = load_policy()


def spec(kind: str, specs):
    [found] = [s for s in specs if s.kind == kind]
    return found


# --- the recovery period: 45 days before 2022-12-13, 30 from then; Scotland 90 ---------------------------


def test_a_positive_rg_the_day_before_the_change_gets_a_45_day_recovery_period():
    rg = date(2022, 12, 12)
    recovery = spec("recovery_period", deadlines.on_decision(POLICY, "rg", "positive", rg, "london"))
    assert recovery.due_on == rg + timedelta(days=45) == date(2023, 1, 26)
    assert recovery.policy_version == "recovery_period@*:2009-04-01"


def test_a_positive_rg_on_the_day_of_the_change_gets_a_30_day_recovery_period():
    rg = date(2022, 12, 13)
    recovery = spec("recovery_period", deadlines.on_decision(POLICY, "rg", "positive", rg, "london"))
    assert recovery.due_on == date(2023, 1, 12)
    assert recovery.policy_version == "recovery_period@*:2022-12-13"


@pytest.mark.parametrize("rg", [date(2022, 12, 12), date(2022, 12, 13), date(2026, 3, 1)])
def test_in_scotland_the_recovery_period_is_90_days_before_and_after_the_change(rg):
    recovery = spec("recovery_period", deadlines.on_decision(POLICY, "rg", "positive", rg, "scotland"))
    assert recovery.due_on == rg + timedelta(days=90)
    assert recovery.policy_version == "recovery_period@scotland:2018-04-01"


def test_wales_and_regions_not_in_the_table_follow_the_default_rows():
    rg = date(2026, 3, 1)
    for region in ("wales", "north_east", None):
        assert spec("recovery_period", deadlines.on_decision(POLICY, "rg", "positive", rg, region)).due_on == date(
            2026, 3, 31
        )


# --- the other decision clocks -------------------------------------------------------------------------


def test_a_positive_rg_also_starts_the_earliest_cg_date_30_days_on():
    rg = date(2026, 1, 10)
    earliest = spec("cg_not_before", deadlines.on_decision(POLICY, "rg", "positive", rg, "scotland"))
    assert earliest.due_on == date(2026, 2, 9)


def test_a_positive_cg_starts_45_days_of_move_on_support():
    [move_on] = deadlines.on_decision(POLICY, "cg", "positive", date(2026, 2, 20), "london")
    assert (move_on.kind, move_on.due_on) == ("move_on", date(2026, 4, 6))
    assert move_on.basis == "positive CG on 2026-02-20"


def test_a_negative_cg_starts_the_14_day_exit_period():
    exit_period = spec("exit_period", deadlines.on_decision(POLICY, "cg", "negative", date(2026, 2, 20), "london"))
    assert (exit_period.kind, exit_period.due_on) == ("exit_period", date(2026, 3, 6))


@pytest.mark.parametrize("stage", ["rg", "cg"])
def test_a_negative_decision_starts_the_30_day_reconsideration_window_as_a_deadline(stage):
    # Statutory guidance (reconsideration section): a request within 30 calendar days of the negative decision.
    decided = date(2026, 2, 20)
    window = spec("reconsideration_window", deadlines.on_decision(POLICY, stage, "negative", decided, "london"))
    assert (window.due_on, window.notice_on) == (date(2026, 3, 22), date(2026, 3, 15))
    assert window.nature == "deadline"
    assert window.policy_version == "reconsideration_window@*:2009-04-01"
    assert window.basis == f"negative {stage.upper()} on 2026-02-20"
    assert deadlines.state("deadline", due_on=window.due_on, notice_on=window.notice_on, stopped=False,
                           today=date(2026, 3, 23)) == "breached"  # fmt: skip


def test_a_negative_rg_starts_only_the_reconsideration_window():
    specs = deadlines.on_decision(POLICY, "rg", "negative", date(2026, 2, 20), "northern_ireland")
    assert [s.kind for s in specs] == ["reconsideration_window"]


def test_a_positive_decision_starts_no_reconsideration_window():
    for stage in ("rg", "cg"):
        kinds = [s.kind for s in deadlines.on_decision(POLICY, stage, "positive", date(2026, 2, 20), "london")]
        assert "reconsideration_window" not in kinds


def test_recording_a_decision_stops_the_clocks_that_waited_for_it():
    assert deadlines.STOPPED_BY_DECISION == {
        "rg": ("rg_decision", "reconsideration_window"),
        "cg": ("recovery_period", "cg_not_before", "reconsideration_window"),
    }


@pytest.mark.parametrize(
    ("referred", "due"),
    [
        (date(2026, 3, 2), date(2026, 3, 9)),  # a Monday: the next Monday
        (date(2026, 3, 6), date(2026, 3, 13)),  # a Friday: the next Friday
        (date(2026, 3, 7), date(2026, 3, 13)),  # a Saturday: five weekdays later is Friday
    ],
)
def test_an_rg_decision_is_expected_5_working_days_after_the_nrm_referral(referred, due):
    [rg] = deadlines.on_nrm_referral(POLICY, referred, "london")
    assert (rg.kind, rg.starts_on, rg.due_on) == ("rg_decision", referred, due)


def test_every_clock_but_turning_18_gives_7_days_notice():
    for found in deadlines.on_decision(POLICY, "rg", "positive", date(2026, 1, 10), "london"):
        assert found.notice_on == found.due_on - timedelta(days=7)


# --- turning 18 ----------------------------------------------------------------------------------------


def test_the_18th_birthday_comes_from_the_date_of_birth_exactly():
    birthday = deadlines.eighteenth_birthday({"date_of_birth": "2008-09-30"}, date(2026, 7, 30))
    assert birthday == deadlines.Birthday(date(2026, 9, 30), "exact")


def test_a_29_february_birthday_is_1_march_in_a_common_year():
    assert deadlines.eighteenth_birthday({"date_of_birth": "2008-02-29"}, date(2025, 1, 1)).on == date(2026, 3, 1)


def test_an_age_estimate_gives_an_approximate_birthday_in_the_middle_of_that_year_of_age():
    birthday = deadlines.eighteenth_birthday({"age_estimate": 16}, date(2026, 1, 1))
    assert birthday.basis == "approximate"
    assert birthday.on == date(2026, 1, 1) + timedelta(days=round(1.5 * 365.25))


def test_no_birthday_without_a_date_of_birth_or_an_estimate_or_for_an_adult_estimate():
    assert deadlines.eighteenth_birthday({"age_disputed": True}, date(2026, 1, 1)) is None
    assert deadlines.eighteenth_birthday({}, date(2026, 1, 1)) is None  # a Duty to Notify carries none
    assert deadlines.eighteenth_birthday({"age_estimate": 30}, date(2026, 1, 1)) is None


def test_turning_18_is_due_on_the_birthday_with_90_days_notice():
    birthday = deadlines.Birthday(date(2027, 1, 17), "exact")
    found = deadlines.on_turning_18(POLICY, birthday, region="london", today=date(2026, 11, 27))
    assert (found.kind, found.due_on, found.notice_on) == ("turning_18", date(2027, 1, 17), date(2026, 10, 19))
    assert found.basis == "18th birthday (exact) on 2027-01-17"


def test_a_clock_is_due_soon_from_its_notice_date_and_breached_the_day_after_its_due_date():
    notice, due = date(2026, 3, 1), date(2026, 3, 8)
    assert not deadlines.is_due_soon(notice, due, date(2026, 2, 28))
    assert deadlines.is_due_soon(notice, due, notice) and deadlines.is_due_soon(notice, due, due)
    assert not deadlines.is_breached(due, due)
    assert deadlines.is_breached(due, due + timedelta(days=1))


# --- natures (issue 12): a deadline can be breached; a minimum is reached; a support end ends -------------


def test_every_kind_has_a_nature_and_only_the_rg_decision_turning_18_and_reconsideration_are_deadlines():
    assert set(deadlines.NATURE_OF) == set(deadlines.CLOCK_KINDS)
    deadline_kinds = {k for k, n in deadlines.NATURE_OF.items() if n == "deadline"}
    assert deadline_kinds == {"rg_decision", "turning_18", "reconsideration_window"}
    assert {k for k, n in deadlines.NATURE_OF.items() if n == "minimum"} == {"recovery_period", "cg_not_before"}
    assert {k for k, n in deadlines.NATURE_OF.items() if n == "support_end"} == {"move_on", "exit_period"}


@pytest.mark.parametrize(
    ("nature", "expected"),
    [
        ("deadline", ["running", "due_soon", "due_soon", "breached"]),
        ("minimum", ["running", "running", "reached", "reached"]),
        ("support_end", ["running", "running", "running", "ended"]),
    ],
)
def test_a_clock_state_depends_on_its_nature(nature, expected):
    notice, due = date(2026, 3, 1), date(2026, 3, 8)
    days = [date(2026, 2, 28), notice, due, due + timedelta(days=1)]
    found = [deadlines.state(nature, due_on=due, notice_on=notice, stopped=False, today=d) for d in days]
    assert found == expected
    for state in found:
        assert state in deadlines.STATES[nature]
    assert deadlines.state(nature, due_on=due, notice_on=notice, stopped=True, today=due) == "stopped"


def test_a_support_end_gives_its_whole_period_as_notice():
    cg = date(2026, 3, 2)
    move_on = spec("move_on", deadlines.on_decision(POLICY, "cg", "positive", cg, "london"))
    exit_period = spec("exit_period", deadlines.on_decision(POLICY, "cg", "negative", cg, "london"))
    assert (move_on.nature, move_on.notice_on) == ("support_end", cg)
    assert (exit_period.nature, exit_period.notice_on) == ("support_end", cg)
    recovery = spec("recovery_period", deadlines.on_decision(POLICY, "rg", "positive", cg, "london"))
    assert recovery.nature == "minimum"


# --- configuration overrides the shipped table ----------------------------------------------------------


def test_configuration_overrides_a_duration_everywhere():
    configured = load_policy(overrides="exit_period=21")
    exit_period = spec("exit_period", deadlines.on_decision(configured, "cg", "negative", date(2026, 2, 20), "london"))
    assert exit_period.due_on == date(2026, 3, 13)
    assert exit_period.policy_version == "exit_period@*:1900-01-01+config"


def test_a_dated_regional_override_applies_only_there_and_from_its_date():
    configured = load_policy(overrides="recovery_period@wales:2027-04-01=40; turning_18_notice=120")
    wales = lambda rg: spec("recovery_period", deadlines.on_decision(configured, "rg", "positive", rg, "wales"))  # noqa: E731
    assert wales(date(2027, 3, 31)).due_on == date(2027, 3, 31) + timedelta(days=30)
    assert wales(date(2027, 4, 1)).due_on == date(2027, 4, 1) + timedelta(days=40)
    london = spec("recovery_period", deadlines.on_decision(configured, "rg", "positive", date(2027, 4, 1), "london"))
    assert london.due_on == date(2027, 5, 1)
    assert configured.days("turning_18_notice", on=date(2026, 1, 1), region="london") == 120


def test_an_override_can_change_the_unit():
    configured = load_policy(overrides="rg_decision=10working_days")
    [rg] = deadlines.on_nrm_referral(configured, date(2026, 3, 2), "london")
    assert rg.due_on == date(2026, 3, 16)


def test_a_policy_file_adds_rows_on_top_of_the_shipped_table(tmp_path):
    extra = tmp_path / "policy.csv"
    extra.write_text("key,value,unit,region,effective_from,note\nmove_on,60,days,northern_ireland,2026-01-01,NI\n")
    configured = load_policy(extra_file=str(extra))
    assert configured.days("move_on", on=date(2026, 6, 1), region="northern_ireland") == 60
    assert configured.days("move_on", on=date(2025, 6, 1), region="northern_ireland") == 45
    assert configured.days("move_on", on=date(2026, 6, 1), region="london") == 45


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("recovery=30", "unknown policy key"),
        ("exit_period=fourteen", "whole number"),
        ("exit_period=14weeks", "unit"),
        ("exit_period", "key=value"),
        ("exit_period:2026-13-01=3", "YYYY-MM-DD"),
    ],
)
def test_a_malformed_override_is_refused_with_the_reason(raw, message):
    with pytest.raises(PolicyError, match=message):
        load_policy(overrides=raw)


def test_a_table_missing_a_rule_is_refused_when_loaded():
    table = "key,value,unit,region,effective_from\nrg_decision,5,working_days,*,2009-04-01\n"
    with pytest.raises(PolicyError, match="no row for recovery_period"):
        load_policy(shipped={"table": table})


def test_no_rule_in_force_before_the_first_effective_date():
    with pytest.raises(PolicyError, match="no recovery_period rule in force on 2000-01-01"):
        POLICY.duration("recovery_period", on=date(2000, 1, 1), region="london")


def test_the_shipped_table_has_every_key():
    assert {row.key for row in POLICY.rows} == set(policy.KEYS)


# --- Northern Ireland (HTE (CJSV) Act (NI) 2015 s18) and the 2017 move-on reform ---------------------------


@pytest.mark.parametrize("rg", [date(2022, 12, 12), date(2022, 12, 13), date(2026, 3, 1)])
def test_in_northern_ireland_the_recovery_period_is_45_days_before_and_after_the_england_change(rg):
    # s18(4): the relevant period is 45 days from the RG determination; England's 30 days never applies there.
    recovery = spec("recovery_period", deadlines.on_decision(POLICY, "rg", "positive", rg, "northern_ireland"))
    assert recovery.due_on == rg + timedelta(days=45)
    assert recovery.policy_version == "recovery_period@northern_ireland:2015-01-13"
    assert recovery.nature == "minimum"  # support continues until the CG (s18(3))


def test_northern_ireland_keeps_the_common_earliest_cg_and_move_on_rows():
    rg = date(2026, 3, 1)
    assert spec("cg_not_before", deadlines.on_decision(POLICY, "rg", "positive", rg, "northern_ireland")).due_on == (
        rg + timedelta(days=30)
    )
    [move_on] = deadlines.on_decision(POLICY, "cg", "positive", rg, "northern_ireland")
    assert move_on.due_on == rg + timedelta(days=45)


def test_a_positive_cg_before_the_2017_reform_gets_14_days_of_move_on_and_45_from_its_date():
    [before] = deadlines.on_decision(POLICY, "cg", "positive", date(2017, 10, 25), "london")
    assert (before.due_on, before.policy_version) == (date(2017, 11, 8), "move_on@*:2009-04-01")
    [after] = deadlines.on_decision(POLICY, "cg", "positive", date(2017, 10, 26), "london")
    assert (after.due_on, after.policy_version) == (date(2017, 12, 10), "move_on@*:2017-10-26")


def test_every_shipped_row_cites_its_source_in_its_note():
    for row in POLICY.rows:
        assert row.note, row.version


def test_every_clock_kind_has_a_page_label_and_is_in_the_event_catalogue():
    from typing import get_args

    from contracts.events import ClockKind, HandedOverClockKind
    from services.advocacy.web.labels import CLOCK_LABELS, clock_words

    assert set(CLOCK_LABELS) == set(deadlines.CLOCK_KINDS) == set(get_args(ClockKind))
    assert "reconsideration_window" in get_args(HandedOverClockKind)
    words = clock_words("reconsideration_window", "deadline", "running", date(2026, 3, 22))
    assert words == "Reconsideration request window: by 22 Mar 2026"
