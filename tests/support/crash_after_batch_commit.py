"""A batch consumer that dies after its batch commits and before it acks a message of it:
`python crash_after_batch_commit.py AMQP DB QUEUE N`.

Takes the N kit events waiting on QUEUE as one batch (support.batches.Gathering), handles them in one unit of
work and exits (code 17) the moment that transaction is durable, as a crash or an OOM kill would: every message
of the batch is left unacknowledged.
"""

import os
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `support`, as pytest's rootdir gives it

from shared.db import make_engine, make_session_factory  # noqa: E402
from shared.inbox import EventHandlers  # noqa: E402
from shared.messaging.catalogue import Subscriptions  # noqa: E402
from shared.messaging.topology import QueueSpec  # noqa: E402
from support.batches import Gathering  # noqa: E402
from support.kit import KIT, KitUnitOfWork, ThingHappened, thing  # noqa: E402

amqp_url, database_url, queue, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
sessions = make_session_factory(make_engine(database_url, instrument=False))


def effect(uow, event) -> None:
    uow.stage(thing(referral_id=event.subject, n=event.data.n))


handled = Subscriptions(KIT, "kit").on(ThingHappened, effect)
# Every unit of work dies the moment its commit is durable.
units = lambda: KitUnitOfWork(sessions, after_commit=lambda: os._exit(17))  # noqa: E731
handlers = EventHandlers("kit", units, handled, trusted={"guest"})
spec = QueueSpec(queue, ("thing.happened",), retry_delay_ms=100)
Gathering(amqp_url, spec, handlers, prefetch=count, batch_size=count, gather=count).run(threading.Event())
