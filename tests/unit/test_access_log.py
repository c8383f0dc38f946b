"""The access log's recording function (shared.access_log) over a fake unit of work: one row per record read,
with who, what, why and the trace id; nothing in the rows but ids and names of routes (issue 15 item 2)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

import pytest
from flask import Flask, g
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy import create_engine, insert, text, update
from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import DeclarativeBase

from shared import access_log
from shared.access_log import AccessLogMixin, Reader
from shared.auth import Principal

pytestmark = pytest.mark.unit
AT = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)


class Base(DeclarativeBase):
    pass


class AccessLog(Base, AccessLogMixin):
    pass


class FakeSession:
    """What a unit of work's session is asked for: the rows it would insert at commit."""

    def __init__(self) -> None:
        self.added: list[object] = []

    def add_all(self, instances: Iterable[object]) -> None:
        self.added.extend(instances)


def test_each_record_read_is_one_row_with_the_reader_and_the_purpose_given():
    session = FakeSession()
    reader = Reader("advocate:a-1", "charity-a")
    count = access_log.record(
        session, AccessLog, "case", ["c-1", "c-2", "c-1"], "case.summary", reader=reader, purpose="caseload", now=AT
    )
    assert count == 2  # a case listed twice is one read
    assert [(r.subject_kind, r.subject_id, r.what, r.sub, r.org, r.purpose, r.at) for r in session.added] == [  # type: ignore[attr-defined]
        ("case", "c-1", "case.summary", "advocate:a-1", "charity-a", "caseload", AT),
        ("case", "c-2", "case.summary", "advocate:a-1", "charity-a", "caseload", AT),
    ]
    assert session.added[0].trace_id is None  # type: ignore[attr-defined]  # no span: no trace id


def test_in_a_request_the_reader_is_the_token_and_the_purpose_the_route_and_the_trace_is_kept():
    app = Flask(__name__)

    @app.get("/v1/cases/<case_id>/notes", endpoint="care.list_notes")
    def notes(case_id: str) -> str:
        return case_id

    session = FakeSession()
    tracer = TracerProvider().get_tracer("test")
    with app.test_request_context("/v1/cases/c-9/notes"), tracer.start_as_current_span("request") as span:
        g.principal = Principal("svc-7", "charity-a", "provider", frozenset({"cases:read"}))
        access_log.record(session, AccessLog, "case", ["c-9"], "case.notes")
        trace_id = format(span.get_span_context().trace_id, "032x")
    [row] = session.added
    assert (row.sub, row.org, row.purpose, row.trace_id) == ("svc-7", "charity-a", "care.list_notes", trace_id)  # type: ignore[attr-defined]


def test_nothing_read_is_nothing_recorded():
    session = FakeSession()
    assert access_log.record(session, AccessLog, "case", [], "case.summary", reader=Reader("s", "o")) == 0
    assert session.added == []


def test_the_rows_are_answered_newest_first_without_the_subject():
    row = AccessLog(at=AT, sub="s", org="o", subject_kind="case", subject_id="c-1", what="case", purpose="p")
    assert access_log.view(row) == {"at": AT, "sub": "s", "org": "o", "what": "case", "purpose": "p", "trace_id": None}
    statement = str(access_log.of_subject(AccessLog, "case", "c-1"))
    assert "ORDER BY access_log.at DESC, access_log.id DESC" in statement


def test_on_sqlite_the_guard_refuses_an_update_and_allows_the_retention_delete():
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with engine.begin() as connection:
        for statement in access_log.guard_ddl("sqlite", create=True):
            connection.execute(text(statement))
        connection.execute(
            insert(AccessLog.__table__).values(  # type: ignore[arg-type]
                at=AT, sub="s", org="o", subject_kind="case", subject_id="c-1", what="case", purpose="p"
            )
        )
    with pytest.raises(DatabaseError, match="append-only"), engine.begin() as connection:
        connection.execute(update(AccessLog.__table__).values(sub="someone-else"))  # type: ignore[arg-type]
    with engine.begin() as connection:
        assert connection.execute(text("DELETE FROM access_log")).rowcount == 1
    assert access_log.guard_ddl("postgresql", create=False)[-1].startswith("DROP FUNCTION")
