"""Database engine, sessions and migrations for one service's own database."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from sqlalchemy import DateTime, Engine, Table, TextClause, TypeDecorator, bindparam, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import sessionmaker

from shared.config import ConfigError

if TYPE_CHECKING:
    from alembic.config import Config

POOL_RECYCLE_SECONDS = 1800


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC datetime on every backend (SQLite stores no offset and returns naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        return value.astimezone(UTC) if value is not None and value.tzinfo else value

    def process_result_value(self, value: datetime | None, dialect):
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def make_engine(url: str, *, instrument: bool = True) -> Engine:
    """`hide_parameters`: a database error's message (logged, recorded on spans) never carries the values
    bound to its statement: names, emails, references. `instrument`: a span per transaction (`_trace_transactions`)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, hide_parameters=True)
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        # No pool_pre_ping: its check costs a round trip per transaction (~1 ms of CPU here, a tenth of a
        # consumer step). A connection the server dropped fails its first statement instead; SQLAlchemy then
        # discards every pooled connection older than the failure, the API answers that one request 503
        # (shared.web) and a consumer retries the message. pool_recycle retires connections before idle
        # timeouts in between (firewalls, PgBouncer) can cut them.
        engine = create_engine(
            url, pool_size=5, max_overflow=5, pool_recycle=POOL_RECYCLE_SECONDS, hide_parameters=True
        )
    event.listen(engine, "handle_error", _scrub_database_error)
    if instrument:
        _trace_transactions(engine)
    return engine


_QUOTED_VALUE = re.compile(r'"[^"]*"|\'[^\']*\'|\([^)]*\)=\([^)]*\)')


def scrubbed(message: str) -> str:
    """A database error's message without what a value could be in: its first line only (PostgreSQL's
    DETAIL and CONTEXT lines quote rows, `Key (x)=(value)`), with quoted and keyed values elided."""
    first = message.strip().splitlines()[0] if message.strip() else ""
    return _QUOTED_VALUE.sub("…", first)[:300]


def _scrub_database_error(context) -> None:
    """Rewrite the driver's error and SQLAlchemy's wrapper of it before anyone logs or records them. With
    `hide_parameters`, this leaves no bound value and no row in a log line or a span."""
    original = context.original_exception
    constraint = getattr(getattr(original, "diag", None), "constraint_name", None)
    clean = scrubbed(str(original)) + (f" (constraint {constraint})" if constraint else "")
    original.args = (clean,)
    wrapper = context.sqlalchemy_exception
    if wrapper is not None:
        wrapper.args = (f"({original.__class__.__module__}.{original.__class__.__name__}) {clean}",)


_OPEN = "otel.transaction"  # the span of the transaction a pooled connection is in, in the connection's info


class _Transaction:
    """What a transaction's span will say when it ends."""

    __slots__ = ("span", "statements", "outcome")

    def __init__(self, span: trace.Span):
        self.span, self.statements, self.outcome = span, 0, "open"

    def end(self) -> None:
        self.span.set_attribute("db.statement.count", self.statements)
        self.span.set_attribute("db.transaction.outcome", self.outcome)
        self.span.end()


def _trace_transactions(engine: Engine) -> None:
    """One span per transaction, `db.transaction <database>`: from its first statement until the connection goes
    back to the pool (its COMMIT's round trip included), with how many statements it ran (`db.statement.count`)
    and how it ended (`db.transaction.outcome`: commit or rollback); never a statement's text, whose literals
    can be personal data. A span per statement (what the SQLAlchemy instrumentation made) was two thirds of a
    referral's spans and a tenth of each process's time.

    Only inside a sampled trace: the transaction of a request or a message is its child; one outside any (a
    health check, a poller's sweep) or under `suppress_instrumentation` makes no root span of its own."""
    database = engine.url.database or ""
    if engine.dialect.name == "sqlite":
        database = Path(database).stem or database  # the file's name, not where it lives
    name = f"db.transaction {database}"
    attributes = {"db.system": engine.dialect.name, "db.name": database}
    spans = trace.get_tracer(__name__)

    def finish(info: dict | None) -> None:
        open_ = info.pop(_OPEN, None) if info is not None else None
        if open_ is not None:
            open_.end()

    def begin(connection) -> None:
        info = _info(connection)
        finish(info)  # the connection's previous transaction, if it was not checked in since
        if info is not None and is_instrumentation_enabled() and trace.get_current_span().is_recording():
            info[_OPEN] = _Transaction(spans.start_span(name, kind=trace.SpanKind.CLIENT, attributes=attributes))

    def statement(connection, *_args) -> None:
        open_ = (_info(connection) or {}).get(_OPEN)
        if open_ is not None:
            open_.statements += 1

    def failed(context) -> None:
        open_ = (_info(context.connection) or {}).get(_OPEN)
        if open_ is not None:  # the exception's type only: its text can quote a value (WithholdErrorText)
            kind = context.original_exception.__class__.__name__
            open_.span.set_attribute("error.type", kind)
            open_.span.set_status(trace.Status(trace.StatusCode.ERROR, kind))

    def ending(outcome: str) -> Callable[[Any], None]:
        def record(connection) -> None:
            open_ = (_info(connection) or {}).get(_OPEN)
            if open_ is not None:
                open_.outcome = outcome

        return record

    event.listen(engine, "begin", begin)
    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "handle_error", failed)
    event.listen(engine, "commit", ending("commit"))
    event.listen(engine, "rollback", ending("rollback"))
    event.listen(engine, "checkin", lambda _dbapi, record: finish(record.info if record is not None else None))
    event.listen(engine, "invalidate", lambda _dbapi, record, _error: finish(record.info))  # before it is cleared


def _info(connection) -> dict | None:
    """A Connection's info (its pooled connection's), or None once it is invalidated or closed: a listener must
    not turn a rollback after a dropped connection into another error."""
    try:
        return connection.info if connection is not None else None
    except SQLAlchemyError:
        return None


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets the API and the worker read while the other writes; the busy timeout makes a writer wait
    # for the lock instead of failing at once.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # A deleted row's bytes are overwritten with zeros, not left in free pages: an erased person's data
    # is gone from the file itself (issue 14).
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def scrub_files(engine: Engine) -> None:
    """After an erasure commits: on SQLite, copy the write-ahead log back into the database file (where
    secure_delete has zeroed the deleted rows) and truncate it, so no erased value stays in the -wal file.
    Nothing to do on PostgreSQL, whose deleted tuples are vacuumed and whose disks are the operator's."""
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


@functools.cache
def insert_or_ignore(
    table: Table, columns: Sequence[str], conflict: Sequence[str], returning: str | None = None, *, rows: int = 1
) -> TextClause:
    """`INSERT INTO table (columns) VALUES (...) ON CONFLICT (conflict) DO NOTHING [RETURNING returning]`, for
    PostgreSQL and SQLite alike; execute it with one parameter per column. With `rows` > 1, one statement of
    that many rows, whose parameters are `<column>_<row>` (row 0 first); a row conflicting with an earlier one
    of the same statement is skipped as well.

    Text, built once per shape, because SQLAlchemy never caches its dialects' insert() constructs
    (`inherit_cache = False`): each execution of one compiled it afresh, ~0.5 ms of CPU per consumed message
    for the inbox row alone. The bind parameters keep their columns' types (UTCDateTime included).
    """
    for name in (*columns, *conflict, *([returning] if returning else [])):
        table.c[name]  # a KeyError for anything that is not one of the table's own columns
    names = [list(columns)] if rows == 1 else [[f"{c}_{row}" for c in columns] for row in range(rows)]
    values = ", ".join(f"({', '.join(':' + name for name in row)})" for row in names)
    # Identifiers from the table's metadata only, checked above; every value is a bind parameter.
    sql = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES {values}"  # noqa: S608
        f" ON CONFLICT ({', '.join(conflict)}) DO NOTHING"
    )
    statement = text(sql + (f" RETURNING {returning}" if returning else ""))
    return statement.bindparams(
        *(bindparam(name, type_=table.c[c].type) for row in names for name, c in zip(row, columns, strict=True))
    )


def is_unavailable(error: BaseException) -> bool:
    """The database could not be reached or dropped the connection: worth retrying, nothing was written."""
    return isinstance(error, OperationalError) or (isinstance(error, DBAPIError) and error.connection_invalidated)


def make_session_factory(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)


def is_ready(engine: Engine) -> bool:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


def migrations_config(migrations: Path, url: str) -> Config:
    """alembic's configuration for the migration history in directory `migrations`, against `url`."""
    # Imported here, not at the top: alembic costs every API and worker process ~12 MB it never uses.
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(migrations: Path, url: str) -> None:
    """Bring the database at `url` to the newest revision of the migration history in `migrations` (one head:
    migrations written side by side are joined by a merge revision before they land)."""
    from alembic import command

    command.upgrade(migrations_config(migrations, url), "head")


def run_migrations_from_env(metadata) -> None:
    """The body of every service's alembic env.py."""
    from alembic import context

    config = context.config
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise ConfigError("alembic: sqlalchemy.url is not set (shared.db.upgrade sets it)")
    engine = create_engine(url)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
