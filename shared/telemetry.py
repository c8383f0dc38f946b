"""OpenTelemetry: one trace from the agency's POST, through the outbox and every consumer, to the webhook.

Export is configured by the standard OTEL_* variables (OTLP over HTTP to a collector). Span attributes
carry ids only (referral, event type, provider, org): never personal data.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

_lock = threading.Lock()
_configured = False

ATTR_REFERRAL = "referral.id"
ATTR_EVENT = "event.type"
ATTR_PROVIDER = "provider.id"
ATTR_ORG = "org.id"
EXPORT_DELAY_MS = 1000


def setup_tracing(service_name: str, exporter: SpanExporter | None = None) -> None:
    """Install the process's tracer provider once (it can be set only once per process) and the requests
    instrumentation. Flask and SQLAlchemy are instrumented per app and per engine where those are made, and
    pika by the first consumer (`instrument_pika`): an API never talks to the broker, and need not load it."""
    global _configured
    with _lock:
        if _configured:
            return
        already = isinstance(trace.get_tracer_provider(), TracerProvider)  # e.g. a test's in-memory one
        if not already and os.environ.get("OTEL_SDK_DISABLED", "").lower() != "true":
            resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME") or service_name})
            provider = TracerProvider(resource=resource)
            exporter = exporter or _exporter_from_env()
            if exporter is not None:
                # Export once a second unless OTEL_BSP_SCHEDULE_DELAY says otherwise (the SDK's default is
                # 5 s): each export is an HTTP request, and at 500 ms they cost every process ~5% of its CPU.
                delay = None if "OTEL_BSP_SCHEDULE_DELAY" in os.environ else EXPORT_DELAY_MS
                provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=delay))
            trace.set_tracer_provider(provider)
        from opentelemetry.instrumentation.requests import RequestsInstrumentor

        RequestsInstrumentor().instrument()
        _configured = True


def instrument_pika() -> None:
    """Instrument pika's blocking channels, once per process (consumers; the relay makes its own spans)."""
    from opentelemetry.instrumentation.pika import PikaInstrumentor

    with _lock:
        instrumentor = PikaInstrumentor()
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()


def _exporter_from_env() -> SpanExporter | None:
    """OTLP when an endpoint is configured; otherwise spans are made (ids reach the logs) but not sent."""
    wanted = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").lower()
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if wanted == "none" or not endpoint:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def flush() -> None:
    provider = trace.get_tracer_provider()
    if hasattr(provider, "force_flush"):
        provider.force_flush(timeout_millis=5000)


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


def carrier_from_current() -> dict[str, str]:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def context_from(carrier: Mapping[str, object] | None):
    """Extract a W3C trace context from AMQP headers or an outbox row's stored fields."""
    clean = {k: v.decode() if isinstance(v, bytes) else v for k, v in (carrier or {}).items()}
    # From an empty context, not the current one: nothing of the caller's (e.g. suppression) leaks in.
    return propagate.extract({k: v for k, v in clean.items() if isinstance(v, str)}, context=Context())


def set_ids(span: trace.Span, **ids: str | None) -> None:
    """Attach the ids that let ops follow a referral: referral, event, provider, org. Ids only."""
    names = {"referral": ATTR_REFERRAL, "event": ATTR_EVENT, "provider": ATTR_PROVIDER, "org": ATTR_ORG}
    for key, value in ids.items():
        if value:
            span.set_attribute(names[key], value)
