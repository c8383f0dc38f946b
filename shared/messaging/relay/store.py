"""The outbox store: the relay's SQL over one service's outbox table.

Due rows are claimed in a transaction that locks them (`FOR UPDATE SKIP LOCKED`, so two relays never send
the same row at once) and stays open while their confirms are outstanding; settling the batch marks the
confirmed rows sent and gives the others their next attempt, in that same transaction. A row the broker
refused is held back with a long backoff in a transaction of its own. Sent rows are pruned after a week.

Core statements on a pooled connection, built once: the relay only reads a few columns and then updates the
whole batch, and the ORM's per-statement work was most of its CPU (bench/README.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from opentelemetry.instrumentation.utils import suppress_instrumentation
from sqlalchemy import Connection, Row, bindparam, delete, select, update
from sqlalchemy.orm import sessionmaker

from shared.clock import utcnow
from shared.db import is_unavailable
from shared.outbox import OutboxMixin
from shared.retry import REFUSED_ROW, UNSENT_ROW

RETENTION = timedelta(days=7)
PRUNE_EVERY = timedelta(hours=1)


@dataclass
class Claim:
    """Due rows, locked by the transaction open on `connection` until the claim is settled or released."""

    connection: Connection
    rows: dict[str, Row]


@dataclass(frozen=True)
class Unsent:
    """A row of a settled claim that the broker did not take, and when it is tried again."""

    row: Row
    error: str
    retry_in_s: float


class OutboxStore:
    def __init__(self, session_factory: sessionmaker, model: type[OutboxMixin], *, batch_size: int = 100):
        self._sessions = session_factory
        self._model = model
        self.batch_size = batch_size
        with session_factory() as session:  # no I/O: only asks which engine it would use
            self.engine = session.get_bind()
        table = model.__table__  # type: ignore[attr-defined]
        self.channel: str = model.__tablename__  # type: ignore[attr-defined]  # what NOTIFY names on commit
        c = table.c
        self._select_due = (
            select(c.id, c.type, c.routing_key, c.payload, c.traceparent, c.tracestate, c.attempts)
            .where(c.sent_at.is_(None), c.next_attempt_at <= bindparam("now"))
            .order_by(c.created_at)
            .limit(batch_size)
            .with_for_update(skip_locked=True)
        )
        self._select_one = self._select_due.limit(1)  # while finding a row the broker refused
        self._mark_sent = (
            update(table)
            .where(c.id.in_(bindparam("ids", expanding=True)))
            .values(sent_at=bindparam("now"), attempts=c.attempts + 1)
        )
        self._mark_unsent = (
            update(table)
            .where(c.id == bindparam("row_id"))
            .values(
                attempts=bindparam("attempts"), next_attempt_at=bindparam("retry_at"), last_error=bindparam("error")
            )
        )
        self._last_prune = utcnow() - RETENTION

    def claim(self, *, one: bool = False) -> Claim | None:
        """Lock the oldest due rows (a batch, or `one`) in a new transaction; None, and no transaction, if none."""
        # The idle poll runs several times a second: keep it out of the traces. Each publish runs in its
        # row's own stored context, so the event's spans are still recorded.
        with suppress_instrumentation():
            connection = self.engine.connect()
        try:
            with suppress_instrumentation():
                connection.begin()
            rows = connection.execute(self._select_one if one else self._select_due, {"now": utcnow()}).all()
            if not rows:
                with suppress_instrumentation():
                    connection.commit()
                connection.close()
                return None
        except BaseException:
            connection.close()
            raise
        return Claim(connection, {row.id: row for row in rows})

    def settle(self, claim: Claim, sent: Iterable[str], unsent: dict[str, str]) -> list[Unsent]:
        """Mark the `sent` rows sent (one UPDATE for the batch) and give each `unsent` row (id: error) its next
        attempt, then commit the claim."""
        now = utcnow()
        retries = []
        try:
            with suppress_instrumentation():
                ids = list(sent)
                if ids:
                    claim.connection.execute(self._mark_sent, {"ids": ids, "now": now})
                for row_id, error in unsent.items():
                    row = claim.rows[row_id]
                    delay = UNSENT_ROW.delay(row.attempts + 1)
                    self._retry_at(claim.connection, row, now + timedelta(seconds=delay), error)
                    retries.append(Unsent(row, error, delay))
                claim.connection.commit()
        finally:
            claim.connection.close()
        return retries

    def release(self, claim: Claim, confirmed: list[str]) -> dict[str, Row]:
        """The connection to the broker went before every confirm came: only the `confirmed` rows are marked
        sent; the others stay pending (sent again: consumers' inboxes drop a duplicate), and are returned.
        A database that is down as well changes nothing: every row is still pending."""
        try:
            with suppress_instrumentation():
                if confirmed:
                    claim.connection.execute(self._mark_sent, {"ids": confirmed, "now": utcnow()})
                    claim.connection.commit()
                else:
                    claim.connection.rollback()
        except Exception as exc:
            if not is_unavailable(exc):
                raise
        finally:
            claim.connection.close()
        return {row_id: row for row_id, row in claim.rows.items() if row_id not in confirmed}

    def hold_back(self, row: Row, error: str) -> float | None:
        """Hold back a row the broker refused (permissions), with the long backoff, so that a permission fixed
        later lets it go. The delay; None if the database is unavailable (the row is still pending)."""
        delay = REFUSED_ROW.delay(row.attempts + 1)
        try:
            with suppress_instrumentation(), self.engine.begin() as connection:
                self._retry_at(connection, row, utcnow() + timedelta(seconds=delay), error)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            return None
        return delay

    def prune(self) -> None:
        """Delete rows sent more than RETENTION ago; at most once every PRUNE_EVERY."""
        now = utcnow()
        if now - self._last_prune < PRUNE_EVERY:
            return
        self._last_prune = now
        with self._sessions.begin() as session:
            session.execute(delete(self._model).where(self._model.sent_at < now - RETENTION))

    def _retry_at(self, connection: Connection, row: Row, retry_at, error: str) -> None:
        values = {"row_id": row.id, "attempts": row.attempts + 1, "retry_at": retry_at, "error": error}
        connection.execute(self._mark_unsent, values)
