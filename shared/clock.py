"""The platform's one notion of now: an aware UTC datetime (stored as such on every backend, shared.db)."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
