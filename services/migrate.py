"""`referrals-migrate intake|advocacy|notifications`: bring one service's database to its newest migration.

Each service keeps its own migration history (`services/<service>/migrations`); the kit's `shared.db.upgrade`
applies a history to a database, and this module knows the platform's services and where each one's is.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from services.advocacy.config import settings_from_env as advocacy_settings
from shared.config import ConfigError, Settings
from shared.db import migrations_config, upgrade

if TYPE_CHECKING:
    from alembic.config import Config

SERVICES = ("intake", "advocacy", "notifications")
SERVICES_DIR = Path(__file__).resolve().parent


def migrations_of(service: str) -> Path:
    if service not in SERVICES:
        raise ConfigError(f"unknown service {service!r}: choose one of {', '.join(SERVICES)}")
    return SERVICES_DIR / service / "migrations"


def alembic_config(service: str, url: str) -> Config:
    return migrations_config(migrations_of(service), url)


def migrate(service: str, url: str) -> None:
    """Bring the service's database to the newest revision of its own migration history."""
    upgrade(migrations_of(service), url)


def settings_of(service: str) -> Settings:
    return advocacy_settings() if service == "advocacy" else Settings.from_env(service)


def main(argv: list[str] | None = None) -> int:
    """`referrals-migrate intake|advocacy|notifications`: apply that service's migrations."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in SERVICES:
        print(f"usage: referrals-migrate {{{'|'.join(SERVICES)}}}", file=sys.stderr)
        return 2
    settings = settings_of(args[0])
    try:
        migrate(args[0], settings.database_url)
    except Exception as exc:  # a one-line reason and the fix, not a traceback
        var = f"{args[0].upper()}_DATABASE_URL"
        print(f"referrals-migrate: cannot migrate {args[0]}: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        print(f"  check that the database in {var} exists and is reachable", file=sys.stderr)
        return 1
    print(f"{args[0]}: database is at the newest migration")
    return 0


if __name__ == "__main__":
    sys.exit(main())
