"""Database helpers for tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event, func, select, text

from shared.db import make_engine


def count(sessions, model, *where) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


@contextmanager
def statements_sent(engine) -> Iterator[list[str]]:
    """The SQL `engine` sends inside the block, in order (a list that fills as it goes)."""
    sent: list[str] = []

    def listen(conn, cursor, statement, *rest) -> None:
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", listen)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", listen)


def drop_connections_to(database: str, admin_url: str) -> int:
    """Terminate every backend connected to `database`, as a restart or failover would; how many there were."""
    engine = make_engine(admin_url, instrument=False)
    try:
        with engine.begin() as connection:
            query = text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :db")
            return len(connection.execute(query, {"db": database}).all())
    finally:
        engine.dispose()
