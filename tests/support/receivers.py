"""Local HTTP endpoints a test starts on 127.0.0.1: an agency's webhook receiver and an OTLP trace sink."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)
    status: int = 200  # what the receiver answered (a WebhookReceiver's `status` at the time)


class LocalServer:
    """A ThreadingHTTPServer on a free loopback port, run in a daemon thread. `keep_alive`: HTTP/1.1, so a
    client's connection is reused (the benchmark's agency endpoint, as a real agency's would be)."""

    def __init__(self, handle_post, *, keep_alive: bool = False):
        self.items: list = []
        self.changed = threading.Condition()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, reply = handle_post(owner, self.path, dict(self.headers.items()), body)
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True  # a kept-alive connection's thread must not hold up the shutdown
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, *items) -> None:
        with self.changed:
            self.items.extend(items)
            self.changed.notify_all()

    def wait_for(self, predicate, timeout: float = 30.0):
        """Wait until predicate(items) returns something truthy; return it (or fail with what arrived)."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                found = predicate(self.items)
                if found:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"timed out after {timeout}s; received {len(self.items)} item(s)")
                self.changed.wait(remaining)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


class WebhookReceiver(LocalServer):
    """An agency's endpoint: records every webhook; answers `status` (200 unless a test changes it, e.g. 503
    while it is down). `before_reply`, when set, is called with each webhook once recorded, before the answer:
    a test holds a request there (in flight) while it kills the sender."""

    def __init__(self):
        self.status = 200
        self.before_reply: Callable[[Received], None] | None = None
        super().__init__(self._post)

    @staticmethod
    def _post(owner, path, headers, body):
        received = Received(path, {k.lower(): v for k, v in headers.items()}, body, status=owner.status)
        owner.add(received)
        if owner.before_reply is not None:
            owner.before_reply(received)
        return received.status, b""

    def answered(self, status: int = 200) -> list[Received]:
        """The webhooks answered `status` so far."""
        with self.changed:
            return [r for r in self.items if r.status == status]


@dataclass
class Span:
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    service: str
    attributes: dict
    status: str = ""  # the status description (set only on an error)
    events: list[tuple[str, dict]] = field(default_factory=list)  # e.g. a recorded exception's name and attributes


class OtlpSink(LocalServer):
    """Receives OTLP/HTTP protobuf trace exports, as a collector would."""

    def __init__(self):
        super().__init__(self._post)

    @staticmethod
    def _post(owner, path, headers, body):
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        spans = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append(
                        Span(
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            name=span.name,
                            service=str(resource.get("service.name", "")),
                            attributes={a.key: _value(a.value) for a in span.attributes},
                            status=span.status.message,
                            events=[(e.name, {a.key: _value(a.value) for a in e.attributes}) for e in span.events],
                        )
                    )
        owner.add(*spans)
        return 200, ExportTraceServiceResponse().SerializeToString()

    def spans_of(self, trace_id: str) -> list[Span]:
        with self.changed:
            return [s for s in self.items if s.trace_id == trace_id]


def _value(any_value):
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    return getattr(any_value, kind) if kind else None
