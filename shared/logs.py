"""JSON logs with trace ids. Log ids and outcomes, never request bodies or personal data.

Every line is one JSON object with `time` (ISO 8601 with its zone, UTC, to the millisecond), `level`,
`logger`, `message`, `service` and, inside a traced operation, `trace_id` and `span_id`. gunicorn's own lines
are the same (GunicornLogger, deploy/gunicorn.conf.py's `logger_class`): its access line gives the method,
the path without its query string, the status, the size, the duration and the request's trace id, so an
operator goes from an access line to the trace and to the service's own lines about that request.
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

from gunicorn import glogging
from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

from shared.config import ConfigError

# Where opentelemetry-instrumentation-flask keeps a request's server span in the WSGI environ: gunicorn writes
# its access line after the request's context has ended, and finds the trace id there.
_FLASK_SPAN_KEY = "opentelemetry-flask.span_key"


class _ZonedJsonFormatter(JsonFormatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 (logging's)
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


def json_formatter() -> logging.Formatter:
    """The one JSON line format of every process (time with its zone, level, logger, message, extras)."""
    return _ZonedJsonFormatter(
        "{asctime}{levelname}{name}{message}",
        style="{",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
    )


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
    handler.setFormatter(json_formatter())
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


class GunicornLogger(glogging.Logger):
    """gunicorn's error and access logs as JSON lines (deploy/gunicorn.conf.py: `logger_class`).

    The access line holds the method, the path *without* its query string, the status, the body's size, the
    duration and the trace and span ids of the request: no query (a URL must never carry personal data, and
    if one did it would not reach the logs from here), no client address, referer or user agent."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        service = service_of(cfg.proc_name or "")
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(json_formatter())
                handler.filters[:] = [_TraceIds(service)]

    def access(self, resp: Any, req: Any, environ: dict, request_time: Any) -> None:
        if not self.access_log_enabled:
            return
        fields: dict[str, Any] = {
            "method": environ.get("REQUEST_METHOD"),
            "path": environ.get("PATH_INFO"),
            "status": _status_code(resp.status),
            "bytes": getattr(resp, "sent", None),
            "duration_ms": round(request_time.total_seconds() * 1000, 1),
        }
        span = environ.get(_FLASK_SPAN_KEY)
        context = span.get_span_context() if span is not None else None
        if context is not None and context.is_valid:
            fields["trace_id"] = format(context.trace_id, "032x")
            fields["span_id"] = format(context.span_id, "016x")
        self.access_log.info("request", extra=fields)


def _status_code(status: Any) -> int | None:
    try:
        return int(str(status).split(None, 1)[0])
    except (ValueError, IndexError):
        return None


def service_of(app_uri: str) -> str:
    """intake for `services.intake.app:create_app()`; the URI itself for any other app (deploy/gunicorn.conf.py)."""
    return app_uri.split(".")[1] if app_uri.startswith("services.") else app_uri
