"""Prometheus metrics of every process (issue 16): filled in by the metrics work."""

from __future__ import annotations

from flask import Flask

from shared.config import Settings


def init_app(app: Flask, settings: Settings) -> None:
    """`GET /metrics` and the request-duration histogram on a service's API."""
