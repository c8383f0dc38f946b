"""A worker that dies after its handler commits and before it acks: `python crash_after_commit.py AMQP DB`.

Runs intake's real handlers on intake's real queue; the process exits (code 17) the moment the transaction
is durable, as a crash or an OOM kill would, leaving the message unacknowledged.
"""

import os
import sys
import threading

import pika

from services.intake.domain import ResponsePolicy
from services.intake.handlers import subscriptions
from services.intake.models import Inbox
from services.intake.offers import Router
from services.intake.worker import QUEUE
from shared.db import make_engine, make_session_factory
from shared.inbox import EventHandlers
from shared.messaging.consumer import Consumer
from shared.messaging.topology import QueueSpec

amqp_url, database_url = sys.argv[1], sys.argv[2]
sessions = make_session_factory(make_engine(database_url, instrument=False))
trusted = {pika.URLParameters(amqp_url).credentials.username}
handled = subscriptions(Router(ResponsePolicy()))
handlers = EventHandlers(QUEUE, sessions, Inbox, handled, trusted=trusted, after_commit=lambda: os._exit(17))
Consumer(amqp_url, QueueSpec(QUEUE, handled.bindings, retry_delay_ms=100), handlers, prefetch=1).run(threading.Event())
