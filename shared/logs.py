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
