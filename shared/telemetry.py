"""OpenTelemetry: one trace from the agency's POST, through the outbox and every consumer, to the webhook.

Export is configured by the standard OTEL_* variables (OTLP over HTTP to a collector), sampling by
OTEL_TRACES_SAMPLER (parent-based by default: the agency's sampled flag decides for the whole trace). Span
attributes carry ids only (referral, event type, provider, org): never personal data. A referral makes few
spans (issue 17): one per HTTP request (Flask's, and the requests client's), one per consumed message (the
consumer's), one per published message (the relay's), one per database transaction (shared.db); nothing
inside them. Two things keep them free of personal data where the libraries would not (issue 15):

- an error's text stays out of spans (WithholdErrorText): a database's DETAIL, or an exception's message,
  can quote a value (a duplicate external reference); a span keeps the exception's type and its frames;
- the trace continues from an agency's `traceparent`, but its `tracestate` and `baggage` stop at the edge
  (EdgeTraceContext): what another organisation put there is not ours to copy into every span, outbox row,
  message and webhook.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import CarrierT, Getter, default_getter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event as SpanEvent
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    ParentBasedTraceIdRatio,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared.config import ConfigError

_lock = threading.Lock()
_configured = False

ATTR_REFERRAL = "referral.id"
ATTR_EVENT = "event.type"
ATTR_PROVIDER = "provider.id"
ATTR_ORG = "org.id"
EXPORT_DELAY_MS = 1000
WITHHELD = "error text withheld: it may quote personal data (see the exception type)"
_FRAME = re.compile(r'^  File ".*", line \d+, in \S+$')


class EdgeTraceContext(TraceContextTextMapPropagator):
    """W3C trace context without the caller's `tracestate`: the trace id and parent continue, the foreign
    vendor state does not. The platform's only propagator, so `baggage` is not read either."""

    def extract(
        self, carrier: CarrierT, context: Context | None = None, getter: Getter[CarrierT] = default_getter
    ) -> Context:
        extracted = super().extract(carrier, context=context, getter=getter)
        parent = trace.get_current_span(extracted).get_span_context()
        if not parent.is_valid or not parent.trace_state:
            return extracted
        bare = SpanContext(parent.trace_id, parent.span_id, parent.is_remote, parent.trace_flags, TraceState())
        return trace.set_span_in_context(NonRecordingSpan(bare), context)


class WithholdErrorText(SpanProcessor):
    """Replaces, as a span ends and before it is exported, its status description and the message of each
    exception event (and the exception text in its stacktrace) with WITHHELD; the exception's type and the
    stack's frames stay for ops. Any instrumentation's errors go through it (SQLAlchemy puts the database's
    error text in the status of the statement's span; Flask and the consumer record exceptions)."""

    def on_end(self, span: ReadableSpan) -> None:
        # The SDK gives processors the span itself: these are the fields its exporters read.
        if span.status.description:
            span._status = Status(span.status.status_code, WITHHELD)  # type: ignore[attr-defined]
        if any(event.name == "exception" for event in span.events):
            span._events = [_withheld(event) for event in span.events]  # type: ignore[attr-defined]


def _withheld(event: SpanEvent) -> SpanEvent:
    if event.name != "exception":
        return event
    attributes = dict(event.attributes or {})
    attributes["exception.message"] = WITHHELD
    stack = str(attributes.get("exception.stacktrace", ""))
    attributes["exception.stacktrace"] = "\n".join(line for line in stack.splitlines() if _FRAME.match(line))
    return SpanEvent(event.name, attributes, event.timestamp)


def sampler_from(env: Mapping[str, str]) -> Sampler:
    """The sampler OTEL_TRACES_SAMPLER names (and OTEL_TRACES_SAMPLER_ARG's ratio), as the OpenTelemetry
    specification lists them; `parentbased_always_on` when unset, so a trace the agency sampled is recorded
    throughout and one it did not leaves no span anywhere. The SDK would read the same variables, but would
    fall back to the default on a misspelt name or ratio: here that stops the process with the fix."""
    name = (env.get("OTEL_TRACES_SAMPLER") or "parentbased_always_on").strip().lower()
    fixed = {
        "always_on": ALWAYS_ON,
        "always_off": ALWAYS_OFF,
        "parentbased_always_on": ParentBased(ALWAYS_ON),
        "parentbased_always_off": ParentBased(ALWAYS_OFF),
    }
    if name in fixed:
        return fixed[name]
    if name not in ("traceidratio", "parentbased_traceidratio"):
        raise ConfigError(
            f"OTEL_TRACES_SAMPLER={name!r} is not a sampler: use one of {', '.join(fixed)}, traceidratio or "
            "parentbased_traceidratio (with OTEL_TRACES_SAMPLER_ARG, a ratio from 0 to 1)"
        )
    raw = env.get("OTEL_TRACES_SAMPLER_ARG", "1.0")
    try:
        ratio = float(raw)
    except ValueError:
        ratio = -1.0
    if not 0.0 <= ratio <= 1.0:
        raise ConfigError(f"OTEL_TRACES_SAMPLER_ARG={raw!r} is not a ratio: set a number from 0 to 1, e.g. 0.1")
    return ParentBasedTraceIdRatio(ratio) if name.startswith("parentbased") else TraceIdRatioBased(ratio)


def setup_tracing(service_name: str, exporter: SpanExporter | None = None) -> None:
    """Install the process's tracer provider once (it can be set only once per process), sampling as
    OTEL_TRACES_SAMPLER says, and the requests instrumentation (the client span that carries the trace to
    intake, from advocacy). Flask is instrumented per app where it is made, the database per engine
    (shared.db). Pika is not instrumented: its "receive" span would sit beside the consumer's own span for each
    message, and its wrapper of basic_publish beside the relay's; those two make the spans and carry the
    context themselves."""
    global _configured
    with _lock:
        if _configured:
            return
        propagate.set_global_textmap(EdgeTraceContext())
        current = trace.get_tracer_provider()
        if isinstance(current, TracerProvider):  # already set, e.g. a test's in-memory one
            # After its exporter: a synchronous one holds the same span object, which this still rewrites.
            current.add_span_processor(WithholdErrorText())
        elif os.environ.get("OTEL_SDK_DISABLED", "").lower() != "true":
            resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME") or service_name})
            provider = TracerProvider(resource=resource, sampler=sampler_from(os.environ))
            provider.add_span_processor(WithholdErrorText())  # first: before any exporter sees the span
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
