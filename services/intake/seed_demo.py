"""Register the demo provider `demo-charity` in intake's directory (idempotent). Used by `make run`."""

from __future__ import annotations

from services.intake import directory
from services.intake.bootstrap import bootstrap
from services.intake.schemas import REGIONS
from shared.config import Settings

DEMO = {
    "name": "Demo Charity (synthetic)",
    "regions": list(REGIONS),
    "languages": ["en", "sq", "ro", "pl", "vi"],
    "serves": ["adult", "child"],
    "accepting": True,
    "capacity": 50,
}


def main() -> None:
    intake = bootstrap(Settings.from_env("intake"), instrument=False)
    try:
        directory.register(intake.use_cases.units, "demo-charity", DEMO)
    finally:
        intake.engine.dispose()
    print("intake: demo provider 'demo-charity' registered (every region, adults and children)")


if __name__ == "__main__":
    main()
