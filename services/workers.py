"""Each of the platform's services' background loops, for `WORKER_IN_API=true`: deploy/gunicorn.conf.py hands
`LOOPS` to the kit's `InApiLoops`, which runs one service's loops in the API's one gunicorn worker.

A service's worker module is imported only when its loops are built, so an API process loads no other
service's worker; its settings are read as `referrals-migrate` reads them (advocacy's default database is the
provider's own file), so the loops and the migrations find the same database.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping

from services.migrate import settings_of
from shared.messaging.worker import Loop, LoopsBuilder

# Each service's worker: the module and the function that builds its loops from the service's settings.
WORKER_LOOPS = {
    "intake": ("services.intake.worker", "build"),
    "advocacy": ("services.advocacy.worker", "build_loops"),
    "notifications": ("services.notifications.worker", "build_loops"),
}


def build_loops(service: str) -> dict[str, Loop]:
    module, builder = WORKER_LOOPS[service]
    return getattr(importlib.import_module(module), builder)(settings_of(service))


LOOPS: Mapping[str, LoopsBuilder] = {service: functools.partial(build_loops, service) for service in WORKER_LOOPS}
