"""Which events are worth a transaction here: an event no subscription wants, and that changes none of the records
notifications keeps, is acked without touching the database (issue 17).

Most events reach notifications only to become webhooks, and most event types most agencies never subscribe
to (in the benchmark, one agency takes `referral.allocated` alone): a transaction each, with its inbox row,
for nothing. The worker keeps what the live subscriptions want in memory (`Interest`: event type -> the orgs
subscribed to it), and `has_effect` decides before any unit of work opens. Skipping the inbox row is safe for
such an event: it did nothing, so a redelivery has nothing to repeat.

What still takes its transaction whoever subscribes: who holds a referral (intake's allocation and transfer,
which a provider's later events are checked against: handlers.HOLDER_EVENTS), and an erasure. An intake event
also records the referral's owner (org and reference) the first time it sees one; an unwanted one need not,
because every later intake event carries them again, and a provider's event is routed only after the
allocation that recorded them.

The API and the worker are separate processes: the worker reads the subscriptions again at most `MAX_AGE`
seconds after it last did, and only when an event asks, so a subscription the API creates is honoured for the
events handled from at most a second later (from its next event when it was idle). A change made in the
process itself (the API's handlers, in tests) is seen at once (`Interest.changed`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Mapping

from opentelemetry.instrumentation.utils import suppress_instrumentation
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from services.notifications.models import Subscription

MAX_AGE = 1.0  # seconds: how stale the worker's view of the subscriptions may be

Wanted = Mapping[str, frozenset[str]]  # event type -> the orgs with a live subscription to it


def has_effect(event_type: str, orgs: Collection[str] | None, wanted: Wanted, *, keeps_records: bool) -> bool:
    """Whether handling an event needs a transaction: it changes a record notifications keeps (`keeps_records`),
    or a live subscription of one of `orgs` wants its type. `orgs` None: which orgs would hear of it is known
    only from the database (a provider's event: the referral's owner), so any subscription to the type counts."""
    if keeps_records:
        return True
    wanting = wanted.get(event_type)
    if not wanting:
        return False
    return orgs is None or not wanting.isdisjoint(orgs)


def wanted_by(subscriptions: Collection[tuple[str, Collection[str]]]) -> Wanted:
    """`wanted` from the live subscriptions' (org, event types)."""
    orgs: dict[str, set[str]] = {}
    for org_id, event_types in subscriptions:
        for event_type in event_types:
            orgs.setdefault(event_type, set()).add(org_id)
    return {event_type: frozenset(ids) for event_type, ids in orgs.items()}


class Interest:
    """What the live subscriptions want, as of at most `max_age` seconds ago: read again by the first caller
    after that (one short SELECT, never in a trace), and not at all while no event asks. Thread-safe: a
    consumer's lanes ask at once."""

    def __init__(
        self,
        load: Callable[[], Wanted],
        *,
        max_age: float = MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._load, self._max_age, self._clock = load, max_age, clock
        self._lock = threading.Lock()
        self._wanted: Wanted = {}
        self._read_at: float | None = None

    def wanted(self) -> Wanted:
        with self._lock:
            now = self._clock()
            if self._read_at is None or now - self._read_at >= self._max_age:
                self._wanted = self._load()  # raises when the database is down: the consumer holds the message
                self._read_at = now
            return self._wanted

    def changed(self) -> None:
        """The subscriptions changed in this process: read them again at the next event."""
        with self._lock:
            self._read_at = None

    @classmethod
    def of(cls, sessions: sessionmaker, **options) -> Interest:
        def load() -> Wanted:
            live = select(Subscription.org_id, Subscription.events).where(Subscription.deleted_at.is_(None))
            with suppress_instrumentation(), sessions() as session:  # plumbing: no span of its own
                return wanted_by([(org_id, events or ()) for org_id, events in session.execute(live)])

        return cls(load, **options)
