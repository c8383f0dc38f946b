"""shared.db traces a transaction, not a statement: one span from its first statement until its connection is
back in the pool, counting its statements and quoting none; none outside a sampled trace."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from shared.db import make_engine, make_session_factory
from shared.telemetry import WITHHELD
from support.db import drop_connections_to

SECRET = "Zephyrine-Canary-5519"


@pytest.fixture(params=["postgresql", "sqlite"])
def engine(request, fresh_database, tmp_path):
    url = fresh_database("spans") if request.param == "postgresql" else f"sqlite:///{tmp_path / 'spans.db'}"
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT UNIQUE)"))
    yield engine
    engine.dispose()


def in_a_request(name: str = "POST /v1/referrals"):
    return trace.get_tracer("test").start_as_current_span(name)


def database_spans(spans):
    return [s for s in spans.get_finished_spans() if s.attributes.get("db.system")]


def test_a_transaction_is_one_span_that_counts_its_statements_and_quotes_none(engine, spans):
    with in_a_request() as request, engine.begin() as connection:
        connection.execute(text("INSERT INTO people (id, name) VALUES (1, :name)"), {"name": SECRET})
        connection.execute(text("UPDATE people SET name = :name WHERE id = 1"), {"name": SECRET + "!"})
        connection.execute(text("SELECT name FROM people"))

    [span] = database_spans(spans)
    assert span.name.startswith("db.transaction ") and span.name.split()[1] == span.attributes["db.name"]
    assert span.attributes["db.system"] == engine.dialect.name
    assert span.attributes["db.statement.count"] == 3
    assert span.attributes["db.transaction.outcome"] == "commit"
    assert span.parent is not None and span.parent.span_id == request.get_span_context().span_id
    assert span.kind is trace.SpanKind.CLIENT
    assert SECRET not in str(dict(span.attributes)) and "INSERT" not in str(dict(span.attributes))


def test_an_orm_session_makes_one_span_per_transaction(engine, spans):
    sessions = make_session_factory(engine)
    with in_a_request("referral.allocated process"):
        with sessions.begin() as session:
            session.execute(text("INSERT INTO people (id, name) VALUES (1, 'a')"))
            session.execute(text("INSERT INTO people (id, name) VALUES (2, 'b')"))
        with sessions() as session:  # read only: rolled back as it closes
            session.execute(text("SELECT count(*) FROM people")).scalar()

    assert [(s.attributes["db.statement.count"], s.attributes["db.transaction.outcome"])
            for s in database_spans(spans)] == [(2, "commit"), (1, "rollback")]  # fmt: skip


def test_a_failed_statement_marks_its_transactions_span_with_the_errors_type_only(engine, spans):
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO people (id, name) VALUES (1, :name)"), {"name": SECRET})
    with in_a_request(), pytest.raises(IntegrityError) as raised, engine.begin() as connection:
        connection.execute(text("INSERT INTO people (id, name) VALUES (2, :name)"), {"name": SECRET})

    [span] = database_spans(spans)
    assert span.status.status_code is trace.StatusCode.ERROR and span.status.description == WITHHELD
    assert span.attributes["error.type"] == type(raised.value.orig).__name__  # the driver's: UniqueViolation
    assert span.attributes["db.transaction.outcome"] == "rollback"
    assert SECRET not in str(dict(span.attributes)) + str(span.events)


def test_no_span_outside_a_trace_under_suppression_or_in_a_trace_not_sampled(engine, spans):
    with engine.connect() as connection:  # a health check, a poller's sweep: no root span of its own
        connection.execute(text("SELECT 1"))
    with in_a_request(), suppress_instrumentation(), engine.begin() as connection:
        connection.execute(text("SELECT 1"))
    unsampled = SpanContext(0x1F, 0x2F, is_remote=True, trace_flags=TraceFlags(TraceFlags.DEFAULT))
    with trace.use_span(NonRecordingSpan(unsampled)), engine.begin() as connection:
        connection.execute(text("SELECT 1"))

    assert database_spans(spans) == []
    with in_a_request(), engine.begin() as connection:  # and the same engine still traces a sampled one
        connection.execute(text("SELECT 1"))
    assert len(database_spans(spans)) == 1


def test_an_engine_made_without_instrumentation_makes_no_span(tmp_path, spans):
    engine = make_engine(f"sqlite:///{tmp_path / 'quiet.db'}", instrument=False)
    with in_a_request(), engine.begin() as connection:
        connection.execute(text("SELECT 1"))
    engine.dispose()
    assert database_spans(spans) == []


def test_a_connection_the_server_dropped_ends_its_span_and_the_error_stays_the_databases(fresh_database, spans):
    url = fresh_database("dropped")
    engine = make_engine(url)
    with in_a_request(), pytest.raises(OperationalError) as raised, engine.begin() as connection:
        connection.execute(text("SELECT 1"))
        drop_connections_to(engine.url.database, url)
        connection.execute(text("SELECT 2"))
    engine.dispose()

    [span] = database_spans(spans)
    assert span.status.status_code is trace.StatusCode.ERROR
    assert span.attributes["error.type"] == type(raised.value.orig).__name__  # AdminShutdown
    assert span.attributes["db.transaction.outcome"] == "rollback"
