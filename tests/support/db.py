"""Database helpers for tests."""

from __future__ import annotations

from sqlalchemy import func, select


def count(sessions, model, *where) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))
