"""Wake the outbox relay when an outbox row commits, instead of when the next poll comes round.

PostgreSQL's NOTIFY is transactional: a notification sent inside a transaction is delivered when that
transaction commits, and never if it rolls back (https://www.postgresql.org/docs/15/sql-notify.html). So
`announce()` (called by the unit of work as it stages an event, shared.uow) adds `pg_notify(<table>)` to
the transaction that stages the event, and `CommitListener` LISTENs on a connection of its own and wakes
the relay. A request in one process (the API) thereby wakes the relay in another (the worker) within a
millisecond or so.

Polling stays as the fallback: SQLite has no NOTIFY, a notification is lost while the listener reconnects
(so it wakes the relay once it is back), and rows waiting to be retried are due by the clock, not by a
commit.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from opentelemetry.instrumentation.utils import suppress_instrumentation
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from shared.retry import RECONNECT, Backoff

log = logging.getLogger(__name__)
_ANNOUNCED = "outbox_notify_announced_in"


def announce(session: Session, channel: str) -> None:
    """Have PostgreSQL notify `channel` when this session's transaction commits (once per transaction;
    PostgreSQL folds identical notifications of one transaction anyway). A no-op on other databases."""
    if session.get_bind().dialect.name != "postgresql":
        return
    transaction = session.get_transaction()
    if transaction is not None and session.info.get(_ANNOUNCED) is transaction:
        return
    session.info[_ANNOUNCED] = transaction
    with suppress_instrumentation():  # plumbing, not part of what the request did
        session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": channel})


class CommitListener:
    """LISTEN on `channel` in a thread of its own and call `on_notify` for each notification.

    `live` says whether notifications are arriving now: while it is false, the relay polls at its short
    interval. After (re)connecting it calls `on_notify` once, for whatever committed while it was away.
    """

    def __init__(self, engine: Engine, channel: str, on_notify: Callable[[], None], *, backoff: Backoff = RECONNECT):
        self._engine = engine
        self._channel = channel
        self._on_notify = on_notify
        self._backoff = backoff
        self.live = False

    @staticmethod
    def supported(engine: Engine) -> bool:
        return engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg"

    def start(self, stop: threading.Event) -> threading.Thread:
        thread = threading.Thread(target=self.run, args=(stop,), name=f"listen-{self._channel}", daemon=True)
        thread.start()
        return thread

    def run(self, stop: threading.Event) -> None:
        import psycopg
        from psycopg import sql

        _args, params = self._engine.dialect.create_connect_args(self._engine.url)
        params.pop("context", None)  # SQLAlchemy's type adapters: not wanted on this bare connection
        failures = 0
        while not stop.is_set():
            try:
                with psycopg.connect(**params, autocommit=True, connect_timeout=5) as connection:
                    connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                    self.live, failures = True, 0
                    self._on_notify()
                    while not stop.is_set():
                        for _notification in connection.notifies(timeout=0.5):
                            self._on_notify()
            except (psycopg.Error, OSError) as exc:
                failures += 1
                delay = self._backoff.delay(failures)
                log.warning(
                    "outbox listener lost its database connection; polling meanwhile",
                    extra={"channel": self._channel, "error": exc.__class__.__name__, "retry_in_s": round(delay, 2)},
                )
                self.live = False
                stop.wait(delay)
            finally:
                self.live = False
