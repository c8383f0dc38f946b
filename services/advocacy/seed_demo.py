"""Demo data for `make run`: two synthetic advocates for PROVIDER_ID. Idempotent; run after migrating.

python -m services.advocacy.seed_demo
"""

from __future__ import annotations

import sys

from sqlalchemy.exc import DBAPIError

from services.advocacy.casework import Casework
from services.advocacy.config import AdvocacyConfig
from shared.config import ConfigError, Settings
from shared.db import make_engine, make_session_factory

# Invented names (shared.testing's syllables), never real people.
DEMO_ADVOCATES = (
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
    config = AdvocacyConfig.from_settings(settings)
    casework = Casework(config.provider_id)
    engine = make_engine(settings.database_url, instrument=False)
    created = 0
    try:
        with make_session_factory(engine).begin() as session:
            for advocate in DEMO_ADVOCATES:
                if casework.advocate_by_email(session, advocate["email"]) is None:
                    casework.create_advocate(session, max_caseload=MAX_CASELOAD, **advocate)
                    created += 1
    finally:
        engine.dispose()
    return config.provider_id, created


def main() -> int:
    try:
        provider_id, created = seed(Settings.from_env("advocacy"))
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
    print(f"advocacy: {present} demo advocates present for provider {provider_id} ({created} created now)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
