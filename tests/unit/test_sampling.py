"""OTEL_TRACES_SAMPLER: parent-based by default, so the agency's sampled flag decides for the whole trace; a
misspelt sampler or ratio stops the process with the fix instead of quietly tracing everything."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.sampling import Decision, Sampler
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from shared.config import ConfigError
from shared.telemetry import sampler_from

pytestmark = pytest.mark.unit

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736


def decision(sampler: Sampler, parent_flags: int | None, trace_id: int = TRACE_ID) -> Decision:
    context = None
    if parent_flags is not None:
        parent = SpanContext(trace_id, 0x00F067AA0BA902B7, is_remote=True, trace_flags=TraceFlags(parent_flags))
        context = trace.set_span_in_context(NonRecordingSpan(parent))
    return sampler.should_sample(context, trace_id, "POST /v1/referrals").decision


def test_by_default_the_agencys_decision_travels_and_a_trace_of_our_own_is_recorded():
    sampler = sampler_from({})
    assert decision(sampler, TraceFlags.SAMPLED) is Decision.RECORD_AND_SAMPLE
    assert decision(sampler, TraceFlags.DEFAULT) is Decision.DROP
    assert decision(sampler, None) is Decision.RECORD_AND_SAMPLE


def test_a_ratio_samples_new_traces_and_still_follows_the_agencys_decision():
    sampler = sampler_from({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"})
    assert decision(sampler, None) is Decision.DROP
    assert decision(sampler, TraceFlags.SAMPLED) is Decision.RECORD_AND_SAMPLE
    every = sampler_from({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1"})
    assert decision(every, TraceFlags.DEFAULT) is Decision.RECORD_AND_SAMPLE  # not parent-based: ignores it


@pytest.mark.parametrize(
    ("name", "parent", "expected"),
    [
        ("always_off", TraceFlags.SAMPLED, Decision.DROP),
        ("always_on", TraceFlags.DEFAULT, Decision.RECORD_AND_SAMPLE),
        ("parentbased_always_off", None, Decision.DROP),
        ("PARENTBASED_ALWAYS_OFF", TraceFlags.SAMPLED, Decision.RECORD_AND_SAMPLE),
    ],
)
def test_each_named_sampler_decides_as_the_specification_says(name, parent, expected):
    assert decision(sampler_from({"OTEL_TRACES_SAMPLER": name}), parent) is expected


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"OTEL_TRACES_SAMPLER": "parentbased_alwayson"}, "OTEL_TRACES_SAMPLER='parentbased_alwayson'"),
        ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "ten percent"}, "OTEL_TRACES_SAMPLER_ARG"),
        ({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "10"}, "from 0 to 1"),
    ],
)
def test_a_misspelt_sampler_or_ratio_is_a_one_line_error_with_the_fix(env, named):
    with pytest.raises(ConfigError) as error:
        sampler_from(env)
    assert named in str(error.value) and "\n" not in str(error.value)
