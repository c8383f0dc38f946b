"""The relay's loop: when to look for due outbox rows, and what to do when the broker or the database goes.

It wakes on commit: on PostgreSQL each transaction that stages an event NOTIFYs, and a listener wakes the
relay (shared.messaging.notify); in the worker's own process, handlers call `wake()` after commit. Polling
remains the fallback: every `poll_interval` without NOTIFY (SQLite, listener down), every
`listen_poll_interval` with it (rows due for a retry, anything missed). Each look claims a batch from the
store, sends it on the transport, and settles the claim once every confirm of the batch is in; a batch is
looked for again at once while the last one was full.

A lost broker connection is retried through AMQP_URL's nodes in turn (shared.messaging.connection.Reconnect:
one WARNING line per attempt, the broker reported down in shared.health meanwhile); a lost database
connection with shared.retry's RECONNECT backoff, the database reported down meanwhile; a database error
that is not an outage, or a channel error (misconfiguration), is raised, so that the worker exits and its
supervisor restarts it. A publish the broker refuses (403) closes the channel, and with it the batch's
confirms: the relay then publishes that batch's rows one by one until the refused row shows itself, holds
that row back with the broker's reason, and the other rows flow on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from sqlalchemy import Row
from sqlalchemy.orm import sessionmaker

from shared.db import is_unavailable
from shared.health import HEALTH
from shared.messaging.connection import Reconnect
from shared.messaging.notify import CommitListener
from shared.messaging.publisher import Outcome
from shared.messaging.relay.store import Claim, OutboxStore
from shared.messaging.relay.transport import ERRORS, REASONS, Transport, refused
from shared.outbox import OutboxMixin
from shared.retry import RECONNECT

log = logging.getLogger("shared.messaging.relay")


class OutboxRelay:
    def __init__(
        self,
        amqp_url: str | Sequence[str],
        session_factory: sessionmaker,
        model: type[OutboxMixin],
        *,
        name: str,
        poll_interval: float = 0.05,
        batch_size: int = 100,
        declare_exchanges: bool = True,
        listen: bool = True,
        listen_poll_interval: float = 1.0,
    ):
        self._url = amqp_url
        self._name = name
        self._connection_name = f"{name}-relay"
        self._poll = poll_interval
        self._listen_poll = max(poll_interval, listen_poll_interval)
        self._declare = declare_exchanges
        self._store = OutboxStore(session_factory, model, batch_size=batch_size)
        self._listener = None
        if listen and CommitListener.supported(self._store.engine):
            self._listener = CommitListener(self._store.engine, self._store.channel, self._kick)
        # State of the current connection, touched only by its I/O loop's thread (wake() excepted).
        self._transport: Transport | None = None
        self._stop = threading.Event()
        self._claim: Claim | None = None  # the batch whose confirms are outstanding
        self._again = False
        self._timer: object = None
        self._kick_lock = threading.Lock()
        self._kick_pending = False
        self._database_down = False  # touched by the I/O loop's thread only, and by run() between connections
        # Rows of a batch whose channel a refused publish closed: published one at a time until each settles.
        self._suspects: set[str] = set()

    @property
    def listening(self) -> bool:
        """Whether commits wake the relay now (PostgreSQL with its listener connected)."""
        return self._listener is not None and self._listener.live

    def wake(self) -> None:
        """Called after a commit that added outbox rows (any thread): publish now, not at the next poll.

        While the listener is live, the commit's own NOTIFY wakes the relay a moment later; a second look
        for the same rows would only cost an empty query, so this does nothing then."""
        if not self.listening:
            self._kick()

    def run(self, stop: threading.Event) -> None:
        """Publish until `stop` is set, reconnecting with backoff. A database error or a channel error
        (misconfiguration) is raised, so that the worker exits and its supervisor restarts it."""
        self._stop = stop
        if self._listener is not None:
            self._listener.start(stop)
        # The I/O loop sleeps until its next poll (up to poll_interval): a stop must wake it, not wait for that.
        threading.Thread(target=self._wake_on, args=(stop,), name=f"{self._name}-relay-stop", daemon=True).start()
        nodes = Reconnect(self._url, self._connection_name)
        try:
            self._run(stop, nodes)
        finally:
            nodes.stopped()
            if self._database_down:
                HEALTH.up("database")  # this loop no longer speaks for the database

    def _run(self, stop: threading.Event, nodes: Reconnect) -> None:
        database_failures = 0
        while not stop.is_set():
            transport = Transport(
                nodes.url,
                self._connection_name,
                on_ready=lambda: self._on_ready(nodes),
                on_settled=self._on_settled,
                passive=not self._declare,
            )
            self._transport = transport
            try:
                transport.run()
            finally:
                self._transport = None
                abandoned = self._abandon_batch(transport)
            if refused(transport.error) and abandoned:
                self._find_refused(abandoned, transport.error)
                continue  # at once: the connection itself is fine
            if transport.failure is not None:
                if not is_unavailable(transport.failure):
                    raise transport.failure
                # The database dropped a connection or is down: unsent rows stay pending; start again (the
                # broker was fine: same node).
                database_failures += 1
                reason = transport.failure.__class__.__name__  # its text may hold the statement's parameters
                self._database_down = True
                HEALTH.down("database", reason)
                delay = RECONNECT.delay(database_failures)
                log.warning(
                    f"database unavailable ({reason}); relay starting again",
                    extra={
                        "connection": self._connection_name,
                        "attempt": database_failures,
                        "retry_in_s": round(delay, 2),
                    },
                )
                stop.wait(delay)
                continue
            database_failures = 0
            if transport.error is not None:
                raise transport.error
            if stop.is_set():
                break
            stop.wait(nodes.failed(transport.closed_by, was_open=transport.opened))

    # --- waking up ------------------------------------------------------------------------------------

    def _kick(self) -> None:
        transport = self._transport
        if transport is None:
            return  # not connected: the first look after connecting finds the rows anyway
        with self._kick_lock:
            if self._kick_pending:
                return
            self._kick_pending = True
        transport.call_soon_threadsafe(self._kicked)

    def _wake_on(self, stop: threading.Event) -> None:
        stop.wait()
        self._kick()  # its tick sees `stop` and closes the connection; run() then returns

    def _kicked(self) -> None:
        with self._kick_lock:
            self._kick_pending = False
        self._database_down = False  # touched by the I/O loop's thread only, and by run() between connections
        self._tick()

    def _on_ready(self, nodes: Reconnect) -> None:
        nodes.connected()
        self._schedule(0)

    def _schedule(self, delay: float) -> None:
        transport = self._transport
        if transport is None:
            return
        if self._timer is not None:
            transport.cancel(self._timer)
        self._timer = transport.call_later(delay, self._tick)

    def _idle_wait(self) -> float:
        return self._listen_poll if self.listening else self._poll

    # --- in the I/O loop: one look at the table -------------------------------------------------------

    def _tick(self) -> None:
        transport = self._transport
        if transport is None or not transport.opened:  # a wake-up before the channel is ready: on_ready looks
            return
        if self._timer is not None:
            transport.cancel(self._timer)
            self._timer = None
        if self._stop.is_set():
            transport.close()
            return
        if self._claim is not None:  # confirms outstanding: look again once they are in
            self._again = True
            return
        self._store.prune()
        if not self._send_batch(transport):
            self._schedule(self._idle_wait())

    def _send_batch(self, transport: Transport) -> bool:
        claim = self._store.claim(one=bool(self._suspects))
        if self._database_down:  # the claim's query went through
            self._database_down = False
            HEALTH.up("database")
        if claim is None:
            return False
        self._claim = claim
        try:
            transport.send(claim.rows.values())
        except BaseException:
            self._abandon_batch(transport)
            raise
        return True

    def _on_settled(self, outcomes: dict[str, Outcome]) -> None:
        claim, self._claim = self._claim, None
        if claim is None:
            return
        sent = [row_id for row_id, outcome in outcomes.items() if outcome is Outcome.SENT]
        unsent = {i: f"{ERRORS[o]}: {REASONS[o]}" for i, o in outcomes.items() if o is not Outcome.SENT}
        for retry in self._store.settle(claim, sent, unsent):
            log.warning(
                "event not accepted by the broker; will retry",
                extra={
                    "event_type": retry.row.type,
                    "event_id": retry.row.id,
                    "reason": REASONS[outcomes[retry.row.id]],
                    "retry_in_s": retry.retry_in_s,
                },
            )
        self._suspects.difference_update(claim.rows)
        more = len(claim.rows) >= self._store.batch_size or self._again or bool(self._suspects)
        self._again = False
        self._schedule(0 if more else self._idle_wait())

    def _abandon_batch(self, transport: Transport) -> dict[str, Row]:
        """The connection went before every confirm came: the claim is released with only the rows the
        broker confirmed marked sent. The rows still pending."""
        claim, self._claim = self._claim, None
        self._again = False
        self._timer = None
        confirmed = transport.abandon()
        if claim is None:
            return {}
        return self._store.release(claim, confirmed)

    # --- after a refused publish -------------------------------------------------------------------------

    def _find_refused(self, abandoned: dict[str, Row], error: BaseException) -> None:
        """A publish of the abandoned batch was refused: with one row, hold it back; else find which."""
        if len(abandoned) > 1:
            self._suspects = set(abandoned)
            log.warning(
                "the broker refused a publish; publishing that batch one by one to find it",
                extra={"connection": self._connection_name, "rows": len(abandoned)},
            )
            return
        [row] = abandoned.values()
        self._suspects.discard(row.id)
        reason = str(getattr(error, "reply_text", "") or "access refused")[:300]
        delay = self._store.hold_back(row, f"refused by the broker: {reason}")
        if delay is None:
            self._suspects.add(row.id)  # still pending: it is found again once the database is back
            return
        log.warning(
            "event refused by the broker (permissions); held back, the others go on",
            extra={"event_type": row.type, "event_id": row.id, "reason": reason, "retry_in_s": delay},
        )
