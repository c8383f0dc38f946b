"""Fixtures for in-process service tests on the real PostgreSQL."""

from __future__ import annotations

import pytest

from shared.config import Settings
from shared.db import make_engine, make_session_factory, migrate


@pytest.fixture
def intake(fresh_database, dev_keys):
    """intake's app on a fresh, migrated PostgreSQL database, and a session factory onto that database."""
    from services.intake.app import create_app

    url = fresh_database("intake")
    migrate("intake", url)
    settings = Settings.from_env("intake", env={"INTAKE_DATABASE_URL": url, "AUTH_PUBLIC_KEY_FILE": str(dev_keys[1])})
    app = create_app(settings)
    engine = make_engine(url, instrument=False)
    yield app, make_session_factory(engine)
    engine.dispose()
