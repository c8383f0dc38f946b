"""Working days are each nation's own (issue 12): the RG decision expected "about 5 working days" after an NRM
referral skips the bank holidays of the case's nation, as gov.uk's "UK bank holidays" lists them (Banking and
Financial Dealings Act 1971 Schedule 1; St Andrew's Day Bank Holiday (Scotland) Act 2007): Scotland has no
Easter Monday but a 2 January (with its substitute day), Northern Ireland has St Patrick's Day."""

from __future__ import annotations

from datetime import date

import pytest

from services.advocacy.continuity import deadlines
from services.advocacy.continuity.bank_holidays import add_working_days, is_working_day, nation_of
from services.advocacy.continuity.policy import load_policy

POLICY = load_policy()


def rg_due(referred: date, region: str) -> date:
    [rg] = deadlines.on_nrm_referral(POLICY, referred, region)
    return rg.due_on


@pytest.mark.parametrize(
    ("region", "due"),
    [
        # Thu 24 Dec 2026: Christmas (Fri), Boxing Day's substitute (Mon 28), New Year's Day (Fri 1 Jan) are out.
        ("london", date(2027, 1, 5)),
        ("wales", date(2027, 1, 5)),
        # Scotland also keeps 2 January, a Saturday in 2027, so Monday 4 January is its substitute.
        ("scotland", date(2027, 1, 6)),
        ("northern_ireland", date(2027, 1, 5)),
    ],
)
def test_a_referral_on_christmas_eve_waits_out_the_bank_holiday_week_of_its_nation(region, due):
    assert rg_due(date(2026, 12, 24), region) == due


@pytest.mark.parametrize(
    ("region", "due"),
    [
        ("north_west", date(2026, 4, 13)),  # Good Friday 3 Apr and Easter Monday 6 Apr are out
        ("scotland", date(2026, 4, 10)),  # Easter Monday is a working day in Scotland
    ],
)
def test_easter_monday_is_a_bank_holiday_in_england_but_not_in_scotland(region, due):
    assert rg_due(date(2026, 4, 2), region) == due


def test_st_patricks_day_is_a_bank_holiday_only_in_northern_ireland():
    assert rg_due(date(2026, 3, 16), "northern_ireland") == date(2026, 3, 24)
    assert rg_due(date(2026, 3, 16), "london") == date(2026, 3, 23)


def test_an_ordinary_week_is_five_weekdays_everywhere():
    for region in ("london", "wales", "scotland", "northern_ireland", None):
        assert add_working_days(date(2026, 3, 2), 5, region) == date(2026, 3, 9)


def test_the_english_regions_and_an_unknown_region_use_englands_list():
    assert {nation_of(r) for r in ("london", "south_east", "yorkshire_and_humber", None, "")} == {"ENG"}
    assert (nation_of("wales"), nation_of("scotland"), nation_of("northern_ireland")) == ("WLS", "SCT", "NIR")
    assert not is_working_day(date(2026, 11, 30), "scotland")  # St Andrew's Day, a Monday
    assert is_working_day(date(2026, 11, 30), "london")
