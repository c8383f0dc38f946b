"""The advocate's page as the browser tests walk it: advocacy's API (gunicorn) on a fresh database seeded as
`make run` seeds it (tests/e2e)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from services.advocacy.seed_demo import seed
from services.migrate import migrate
from shared.config import Settings
from support.infra import temporary_databases
from support.processes import Platform

CHROMIUM = Path("/usr/bin/chromium")
PROVIDER = "demo-charity"


@contextmanager
def demo_advocacy(
    pg_admin_url: str, dev_keys, workdir: Path, database: str, more: Callable[[Settings], None]
) -> Iterator[str]:
    """advocacy's API (gunicorn) on a fresh database seeded as `make run` seeds it, dev sign-in on, then with
    what `more` adds: its base URL."""
    with temporary_databases(pg_admin_url) as new_database:
        url = new_database(database)
        migrate("advocacy", url)
        env = {
            "ADVOCACY_DATABASE_URL": url,
            "PROVIDER_ID": PROVIDER,
            "AUTH_PUBLIC_KEY_FILE": str(dev_keys[1]),
            "ADVOCACY_DEV_SIGNIN": "true",
            "OTEL_SDK_DISABLED": "true",
        }
        settings = Settings.from_env("advocacy", env=env)
        seed(settings)
        more(settings)
        platform = Platform(workdir, env)
        try:
            yield platform.start_api("advocacy", {})
        finally:
            platform.stop()
