"""JSON logs with trace ids. Log ids and outcomes, never request bodies or personal data."""

from __future__ import annotations

import logging
import os
import sys

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

from shared.config import ConfigError


class _TraceIds(logging.Filter):
    def __init__(self, service: str):
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        record.service = self.service
        if context.is_valid:
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
        return True


def configure_logging(service: str, level: str | None = None) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(_TraceIds(service))
    handler.setFormatter(
        JsonFormatter(
            "{asctime}{levelname}{name}{message}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    name = (level or os.environ.get("LOG_LEVEL") or "INFO").strip().upper()  # `info` as well as `INFO`
    if name not in logging.getLevelNamesMapping():
        raise ConfigError(f"LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, not {name!r}")
    root.setLevel(name)
    # pika logs connection details at INFO on every reconnect; keep its warnings only.
    logging.getLogger("pika").setLevel(logging.WARNING)
    quiet_pika(debug=name == "DEBUG")


# pika's adapters log each failed or lost connection at ERROR, some with a traceback, six lines or more per
# attempt; the loop that reconnects logs one WARNING line instead (shared.messaging.connection.Reconnect).
# pika.connection and pika.channel stay as they are: what they log at ERROR is not a reconnect.
PIKA_CONNECTION_LOGGERS = (
    "pika.adapters.base_connection",
    "pika.adapters.blocking_connection",
    "pika.adapters.select_connection",
    "pika.adapters.utils.connection_workflow",
    "pika.adapters.utils.io_services_utils",
    "pika.adapters.utils.selector_ioloop_adapter",
)


def quiet_pika(*, debug: bool = False) -> None:
    """Silence pika's connection-failure logging, unless `debug` (LOG_LEVEL=DEBUG) wants every detail."""
    for logger in PIKA_CONNECTION_LOGGERS:
        logging.getLogger(logger).setLevel(logging.NOTSET if debug else logging.CRITICAL)
