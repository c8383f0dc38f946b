"""Database helpers for tests."""

from __future__ import annotations

from sqlalchemy import func, select, text

from shared.db import make_engine


def count(sessions, model, *where) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def drop_connections_to(database: str, admin_url: str) -> int:
    """Terminate every backend connected to `database`, as a restart or failover would; how many there were."""
    engine = make_engine(admin_url, instrument=False)
    try:
        with engine.begin() as connection:
            query = text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :db")
            return len(connection.execute(query, {"db": database}).all())
    finally:
        engine.dispose()
