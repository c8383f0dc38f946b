"""`python -m support.partition_worker`: a worker process of the messaging kit over a partitioned queue, for
tests/integration/test_partitions.py (SIGKILLed there as a real worker would die).

It consumes `PARTITION_TEST_QUEUE`'s partitions as `WORKER_INDEX` of `WORKER_COUNT` (shared.messaging.partitions:
own share first, the rest as standby), and its handler records each kit event it applies in the table `handled`
(referral, n, the partition it came from, this worker), in one transaction with the inbox row. A `poison` event
fails on its first attempt, and passes when its retry comes back.
"""

from __future__ import annotations

import os

from sqlalchemy import text

from shared.config import Settings
from shared.db import make_engine, make_session_factory
from shared.inbox import EventHandlers
from shared.logs import configure_logging
from shared.messaging.catalogue import Subscriptions
from shared.messaging.consumer import Consumer
from shared.messaging.partitions import ordered_loops, subscription_order
from shared.messaging.topology import hash_exchange_of, partition_names
from shared.messaging.worker import run_loops
from support.kit import KIT, KitUnitOfWork, ThingHappened

RECORD = text("INSERT INTO handled (referral_id, n, queue, worker) VALUES (:referral, :n, :queue, :worker)")


def main() -> int:
    configure_logging("partition-worker")
    settings = Settings.from_env("kit")
    queue = os.environ["PARTITION_TEST_QUEUE"]
    worker = f"w{settings.worker_index}"
    sessions = make_session_factory(make_engine(settings.database_url))

    failed_once: set[str] = set()

    def consumer(partition: str) -> Consumer:
        def record(uow, event) -> None:
            if event.data.poison and event.id not in failed_once:  # once: the retry comes back to this partition
                failed_once.add(event.id)
                raise RuntimeError("fails on its first attempt")
            values = {"referral": event.data.referral_id, "n": event.data.n, "queue": partition, "worker": worker}
            uow.session.execute(RECORD, values)

        handled = Subscriptions(KIT, "kit").on(ThingHappened, record)
        handlers = EventHandlers(queue, lambda: KitUnitOfWork(sessions), handled, trusted=settings.trusted_publishers)
        return Consumer.from_settings(
            settings, partition, ("thing.happened",), handlers, hash_exchange=hash_exchange_of(queue)
        )

    consumers = [consumer(name) for name in partition_names(queue, settings.partitions)]
    own, standby = subscription_order(settings.partitions, settings.worker_index, settings.worker_count)
    return run_loops(ordered_loops(consumers, own, standby, settings.partition_standby_seconds))


if __name__ == "__main__":
    raise SystemExit(main())
