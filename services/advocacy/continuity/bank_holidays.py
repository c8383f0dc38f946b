"""Working days in each UK nation: Monday to Friday, less that nation's bank holidays.

The bank holidays differ by nation (Banking and Financial Dealings Act 1971 Schedule 1, as gov.uk's "UK bank
holidays" lists them: Scotland keeps 2 January, St Andrew's Day and its own August holiday but not Easter
Monday; Northern Ireland adds St Patrick's Day and 12 July; England and Wales share one list). The dates,
substitute days and one-off holidays come from the `holidays` package (GB, subdivisions ENG/WLS/SCT/NIR),
so a new year's proclamations arrive with a dependency update, not an edit here. Pure: dates in, dates out.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache

import holidays

# A referral's region (DESIGN 4: location.region) -> the `holidays` package's GB subdivision. The English
# regions, and a region not given, use England's list.
NATION_OF_REGION = {"wales": "WLS", "scotland": "SCT", "northern_ireland": "NIR"}
ENGLAND = "ENG"


def nation_of(region: str | None) -> str:
    return NATION_OF_REGION.get((region or "").strip().lower(), ENGLAND)


@lru_cache(maxsize=256)
def bank_holidays(nation: str, year: int) -> frozenset[date]:
    """The bank holidays of `nation` (ENG, WLS, SCT, NIR) in `year`, substitute days included."""
    return frozenset(holidays.country_holidays("GB", subdiv=nation, years=year))


def is_working_day(day: date, region: str | None) -> bool:
    return day.weekday() < 5 and day not in bank_holidays(nation_of(region), day.year)


def add_working_days(start: date, days: int, region: str | None) -> date:
    """The date `days` working days after `start` in the region's nation (`start` itself never counts)."""
    current, left = start, days
    while left > 0:
        current += timedelta(days=1)
        if is_working_day(current, region):
            left -= 1
    return current
