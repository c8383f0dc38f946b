"""Demo data for `make run`: two synthetic advocates and a coordinator for PROVIDER_ID, and a few demo cases
with NRM clocks (one RG decision overdue) for the advocate's page. Idempotent; run after migrating.

python -m services.advocacy.seed_demo
"""

from __future__ import annotations

import sys
from typing import Any

from sqlalchemy.exc import DBAPIError

from services.advocacy import demo_cases
from services.advocacy.bootstrap import bootstrap
from services.advocacy.config import settings_from_env
from services.advocacy.continuity.wall_clock import today
from shared.config import ConfigError, Settings

# Invented names (shared.testing's syllables), never real people.
DEMO_ADVOCATES: tuple[dict[str, Any], ...] = (
    {"name": "Advocate Kalo Demo", "email": "kalo.demo@demo-charity.example", "languages": ["en", "sq"]},
    {
        "name": "Advocate Mizu Demo",
        "email": "mizu.demo@demo-charity.example",
        "languages": ["en", "ro", "pl"],
    },
)
MAX_CASELOAD = 25


def seed(settings: Settings) -> tuple[str, int]:
    """Ensure the demo advocates exist. Returns (provider_id, how many were created now)."""
    advocacy = bootstrap(settings, instrument=False)  # the same parts as the API and the worker
    continuity = advocacy.continuity
    created = 0
    try:
        with advocacy.unit_of_work() as uow:
            for advocate in DEMO_ADVOCATES:
                if uow.advocates.by_email(advocate["email"]) is None:
                    continuity.casework.create_advocate(uow, max_caseload=MAX_CASELOAD, **advocate)
                    created += 1
            # Continuity of care: a coordinator, and demo cases with clocks for the advocate's page.
            created += demo_cases.ensure_coordinator(uow, continuity, MAX_CASELOAD)
            advocates = [uow.advocates.by_email(a["email"]) for a in DEMO_ADVOCATES]
            demo_cases.ensure_cases(uow, continuity, [a for a in advocates if a], today(continuity.wall_clock))
    finally:
        advocacy.engine.dispose()
    return advocacy.provider_id, created


def main() -> int:
    try:
        provider_id, created = seed(settings_from_env())
    except ConfigError as exc:
        print(f"advocacy seed_demo: {exc}", file=sys.stderr)
        return 2
    except DBAPIError as exc:  # a one-line reason and the fix, not a traceback
        print(f"advocacy seed_demo: {exc.__class__.__name__}: {exc.orig}", file=sys.stderr)
        print(
            "  is the database reachable and migrated? run `referrals-migrate advocacy` first",
            file=sys.stderr,
        )
        return 1
    present = len(DEMO_ADVOCATES)
    print(
        f"advocacy: {present} demo advocates, a coordinator and {len(demo_cases.DEMO_CASES)} demo cases present "
        f"for provider {provider_id} ({created} advocates created now)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
