"""shared.telemetry at the platform's edge (issue 15 part 4): the trace context continues without an agency's
tracestate, and a span that records an error keeps its type and frames, never its text."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.telemetry import WITHHELD, EdgeTraceContext, WithholdErrorText

pytestmark = pytest.mark.unit

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_the_trace_continues_without_the_callers_tracestate():
    context = EdgeTraceContext().extract({"traceparent": TRACEPARENT, "tracestate": "agency=SECRET"})
    parent = trace.get_current_span(context).get_span_context()
    assert format(parent.trace_id, "032x") == "4bf92f3577b34da6a3ce929d0e0e4736" and parent.is_remote
    assert not parent.trace_state
    carrier: dict[str, str] = {}
    EdgeTraceContext().inject(carrier, context=context)
    assert "tracestate" not in carrier and carrier["traceparent"] == TRACEPARENT


def test_an_error_span_keeps_the_exception_type_and_frames_not_its_text():
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(WithholdErrorText())
    provider.add_span_processor(SimpleSpanProcessor(exported))
    with provider.get_tracer("t").start_as_current_span("insert") as span:
        try:
            raise ValueError('duplicate key\nDETAIL:  Key (org_id, external_reference)=(met, "MET-SECRET-1")')
        except ValueError as exc:
            span.record_exception(exc)
            span.set_status(trace.Status(trace.StatusCode.ERROR, str(exc)))
    (finished,) = exported.get_finished_spans()
    assert finished.status.description == WITHHELD and finished.status.status_code is trace.StatusCode.ERROR
    (event,) = finished.events
    assert event.attributes["exception.type"] == "ValueError" and event.attributes["exception.message"] == WITHHELD
    assert "SECRET" not in str(dict(event.attributes)) and 'File "' in event.attributes["exception.stacktrace"]
