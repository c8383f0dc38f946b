"""Register the demo provider `demo-charity` in intake's directory (idempotent). Used by `make run`."""

from __future__ import annotations

from services.intake.models import Provider
from services.intake.schemas import REGIONS
from shared.clock import utcnow
from shared.config import Settings
from shared.db import make_engine, make_session_factory

DEMO = {
    "name": "Demo Charity (synthetic)",
    "regions": list(REGIONS),
    "languages": ["en", "sq", "ro", "pl", "vi"],
    "serves": ["adult", "child"],
    "accepting": True,
    "capacity": 50,
}


def main() -> None:
    settings = Settings.from_env("intake")
    sessions = make_session_factory(make_engine(settings.database_url, instrument=False))
    with sessions.begin() as session:
        provider = session.get(Provider, "demo-charity") or Provider(id="demo-charity")
        for key, value in DEMO.items():
            setattr(provider, key, value)
        provider.updated_at = utcnow()
        session.add(provider)
    print("intake: demo provider 'demo-charity' registered (every region, adults and children)")


if __name__ == "__main__":
    main()
