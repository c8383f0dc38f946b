"""Every log line is JSON with its zone, and gunicorn's access line carries the trace id but no query string."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from types import SimpleNamespace

import pytest
from gunicorn.config import Config
from opentelemetry.sdk.trace import TracerProvider

from shared.logs import GunicornLogger, configure_logging

pytestmark = pytest.mark.unit


def _lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_a_service_line_is_json_with_a_zoned_timestamp(capsys):
    configure_logging("intake", "INFO")
    logging.getLogger("services.intake").info("referral stored", extra={"referral_id": "r-1"})
    (line,) = _lines(capsys.readouterr().out)
    assert line["message"] == "referral stored" and line["service"] == "intake" and line["level"] == "INFO"
    assert datetime.fromisoformat(line["time"]).utcoffset() == timedelta(0)  # a zone, and it is UTC


def _gunicorn_logger() -> GunicornLogger:
    cfg = Config()
    cfg.set("accesslog", "-")
    cfg.set("errorlog", "-")
    cfg.set("default_proc_name", "services.intake.app:create_app()")
    return GunicornLogger(cfg)


def test_the_access_line_names_the_request_and_its_trace_but_not_its_query_or_client(capsys):
    logger = _gunicorn_logger()
    span = TracerProvider().get_tracer("test").start_span("POST /v1/referrals")
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/v1/referrals",
        "QUERY_STRING": "name=Synthetic+Person",
        "REMOTE_ADDR": "203.0.113.9",
        "HTTP_USER_AGENT": "agency-client/1.0",
        "opentelemetry-flask.span_key": span,
    }
    response = SimpleNamespace(status="200 OK", sent=512, headers=[])
    logger.access(response, SimpleNamespace(), environ, timedelta(milliseconds=12.34))
    out = capsys.readouterr().out
    (line,) = _lines(out)
    context = span.get_span_context()
    assert line["message"] == "request" and line["logger"] == "gunicorn.access" and line["service"] == "intake"
    assert (line["method"], line["path"], line["status"], line["bytes"]) == ("GET", "/v1/referrals", 200, 512)
    assert line["duration_ms"] == 12.3
    assert line["trace_id"] == format(context.trace_id, "032x")
    assert datetime.fromisoformat(line["time"]).utcoffset() == timedelta(0)
    for private in ("Synthetic", "203.0.113.9", "agency-client"):
        assert private not in out


def test_an_untraced_request_has_no_trace_id_and_the_error_log_is_json_too(capsys):
    logger = _gunicorn_logger()
    logger.access(
        SimpleNamespace(status="404 NOT FOUND", sent=0),
        SimpleNamespace(),
        {"REQUEST_METHOD": "GET", "PATH_INFO": "/nowhere"},
        timedelta(milliseconds=1),
    )
    logger.error("Worker (pid:%s) was sent SIGKILL!", 4242)
    captured = capsys.readouterr()
    (access,), (error,) = _lines(captured.out), _lines(captured.err)  # gunicorn's error log is on stderr
    assert access["status"] == 404 and "trace_id" not in access
    assert error["level"] == "ERROR" and error["message"] == "Worker (pid:4242) was sent SIGKILL!"
