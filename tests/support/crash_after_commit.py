"""A worker that dies after its handler commits and before it acks: `python crash_after_commit.py AMQP DB`.

Runs intake's real handlers on intake's real queue; the process exits (code 17) the moment the transaction
is durable, as a crash or an OOM kill would, leaving the message unacknowledged.
"""

import functools
import os
import sys
import threading

import pika

from services.intake.bootstrap import UseCases
from services.intake.domain import ResponsePolicy
from services.intake.uow import SqlIntakeUnitOfWork
from services.intake.worker import QUEUE
from shared.db import make_engine, make_session_factory
from shared.inbox import EventHandlers
from shared.messaging.consumer import Consumer
from shared.messaging.topology import QueueSpec

amqp_url, database_url = sys.argv[1], sys.argv[2]
sessions = make_session_factory(make_engine(database_url, instrument=False))
trusted = {pika.URLParameters(amqp_url).credentials.username}
# Every unit of work dies the moment its commit is durable.
use = UseCases.over(
    functools.partial(SqlIntakeUnitOfWork, sessions, after_commit=lambda: os._exit(17)), ResponsePolicy()
)
handlers = EventHandlers(QUEUE, use.units, use.handlers, trusted=trusted)
Consumer(amqp_url, QueueSpec(QUEUE, use.handlers.bindings, retry_delay_ms=100), handlers, prefetch=1).run(
    threading.Event()
)
