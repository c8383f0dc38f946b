"""The access log (issue 15 item 2): one row per read of personal data, who read what, when, and why.

Every route that shows a person's data records its read with `record(...)` in the same transaction that
loaded the data, before the response exists: if the row cannot be written the request fails and nothing is
shown (fail closed). A row holds no personal data itself: the reader's `sub` and `org`, the kind and id of
the record read (`referral`/`case` and its id), `what` (a short fixed name: `referral`, `case.notes`,
`subject_access`), the `purpose` (the declared purpose, else the route's endpoint name) and the trace id.

Append-only: on PostgreSQL a trigger (`guard_ddl`, run by each service's migration) refuses UPDATE,
TRUNCATE and DELETE by the service's own connection; the one escape is the retention step, which declares its
cutoff in its own transaction (`allow_purge`) and may then delete only rows older than that cutoff. SQLite
(the embedded dev default) refuses UPDATE by a trigger; it has no session settings for the escape.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from flask import has_request_context, request
from marshmallow import Schema, fields
from opentelemetry import trace
from sqlalchemy import Integer, Select, String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from shared.auth import current_principal
from shared.clock import utcnow
from shared.db import UTCDateTime

# The session setting the retention step sets (SET LOCAL) to delete rows older than its value.
PURGE_SETTING = "referrals.access_log_purge_before"


class AccessLogMixin:
    __tablename__ = "access_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    sub: Mapped[str] = mapped_column(String(200))
    org: Mapped[str] = mapped_column(String(200))
    subject_kind: Mapped[str] = mapped_column(String(30))
    subject_id: Mapped[str] = mapped_column(String(64), index=True)
    what: Mapped[str] = mapped_column(String(60))
    purpose: Mapped[str] = mapped_column(String(120))
    trace_id: Mapped[str | None] = mapped_column(String(32))


@dataclass(frozen=True)
class Reader:
    """Who read: a token's `sub` and `org`, or a page's signed-in advocate (`advocate:<id>`, the provider)."""

    sub: str
    org: str


class Adds(Protocol):
    """What `record` needs of a unit of work's session (a fake in unit tests)."""

    def add_all(self, instances: Iterable[object]) -> None: ...


def trace_id() -> str | None:
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def record(
    session: Adds,
    model: type[AccessLogMixin],
    subject_kind: str,
    subject_ids: Iterable[str],
    what: str,
    *,
    reader: Reader | None = None,
    purpose: str | None = None,
    now: datetime | None = None,
) -> int:
    """Stage one row per record read, in `session`'s transaction (it commits with the read, or not at all).
    `reader` defaults to the request's verified token, `purpose` to the route's endpoint name."""
    if reader is None:
        principal = current_principal()
        reader = Reader(principal.sub, principal.org)
    if purpose is None:
        purpose = (request.endpoint or "unknown") if has_request_context() else "unknown"
    at, traced = now or utcnow(), trace_id()
    rows = [
        model(  # type: ignore[call-arg]  # the mixin's concrete table class takes its columns
            at=at,
            sub=reader.sub[:200],
            org=reader.org[:200],
            subject_kind=subject_kind,
            subject_id=subject_id,
            what=what,
            purpose=purpose[:120],
            trace_id=traced,
        )
        for subject_id in dict.fromkeys(subject_ids)  # once per record, in order
    ]
    session.add_all(rows)
    return len(rows)


def of_subject(model: type[AccessLogMixin], subject_kind: str, subject_id: str) -> Select:
    """The reads of one record, newest first (for the `access-log` routes, paged by `shared.web.page`)."""
    return (
        select(model)
        .where(model.subject_kind == subject_kind, model.subject_id == subject_id)
        .order_by(model.at.desc(), model.id.desc())
    )


def view(row: AccessLogMixin) -> dict[str, object]:
    """A row as the `access-log` routes answer it (read inside the transaction that loaded it)."""
    return {name: getattr(row, name) for name in ("at", "sub", "org", "what", "purpose", "trace_id")}


class AccessLogEntrySchema(Schema):
    at = fields.DateTime(metadata={"description": "When the record was read (UTC)."})
    sub = fields.String(metadata={"description": "Who read it: the token's subject, or `advocate:<id>` (page)."})
    org = fields.String(metadata={"description": "The reader's organisation."})
    what = fields.String(metadata={"description": "What was read: `referral`, `case`, `case.notes`, ..."})
    purpose = fields.String(metadata={"description": "The declared purpose, else the route that read it."})
    trace_id = fields.String(allow_none=True, metadata={"description": "The request's trace id (hex)."})


# ---- append-only on PostgreSQL -------------------------------------------------------------------------


def allow_purge(session: Session, cutoff: datetime) -> None:
    """The retention step's escape, in its own transaction only (SET LOCAL): rows older than `cutoff` may go."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.set_config(PURGE_SETTING, cutoff.isoformat(), True)))


# The migrations' DDL, one statement each (frozen once released: change it by a new migration, not here).
POSTGRES_GUARD = (
    f"""CREATE FUNCTION access_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  purge_before text := current_setting('{PURGE_SETTING}', true);
BEGIN
  IF TG_OP = 'DELETE' AND coalesce(purge_before, '') <> '' THEN
    IF OLD.at < purge_before::timestamptz THEN
      RETURN OLD;
    END IF;
  END IF;
  RAISE EXCEPTION 'access_log is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$""",
    "CREATE TRIGGER access_log_append_only BEFORE UPDATE OR DELETE ON access_log "
    "FOR EACH ROW EXECUTE FUNCTION access_log_append_only()",
    "CREATE TRIGGER access_log_no_truncate BEFORE TRUNCATE ON access_log "
    "FOR EACH STATEMENT EXECUTE FUNCTION access_log_append_only()",
)
POSTGRES_UNGUARD = (
    "DROP TRIGGER IF EXISTS access_log_no_truncate ON access_log",
    "DROP TRIGGER IF EXISTS access_log_append_only ON access_log",
    "DROP FUNCTION IF EXISTS access_log_append_only()",
)
SQLITE_GUARD = (
    "CREATE TRIGGER access_log_append_only BEFORE UPDATE ON access_log "
    "BEGIN SELECT RAISE(ABORT, 'access_log is append-only: UPDATE refused'); END",
)
SQLITE_UNGUARD = ("DROP TRIGGER IF EXISTS access_log_append_only",)


def guard_ddl(dialect: str, *, create: bool) -> tuple[str, ...]:
    """The statements a migration runs to make the table append-only on `dialect` (or to undo it)."""
    if dialect == "postgresql":
        return POSTGRES_GUARD if create else POSTGRES_UNGUARD
    return SQLITE_GUARD if create else SQLITE_UNGUARD
