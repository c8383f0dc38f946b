"""Rate limits on every API (issue 16): filled in by the rate-limit work."""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api

from shared.config import Settings


def init_app(app: Flask, api: Api, settings: Settings) -> None:
    """The API's limits (RATE_LIMIT_*)."""
