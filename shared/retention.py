"""Retention as versioned policy data (issue 14 item 4): how long each kind of record is kept, and the step
every worker runs to erase, anonymise or delete what is past its period.

The table ships as `contracts/retention.csv`: one row per (record kind, service) and valid-from date, with
the period, the action (`erase`: the service's own erasure of a referral's personal data; `anonymise`: strip
identifiers, keep the row; `delete`: the row goes) and, in the note, its legal basis or "practice, NOT
statute". A rule is cited by its version, `kind@service:valid_from` (as the NRM table's rows are), and the
row in force is the newest whose valid-from is on or before the day the step runs.

Each service declares its stores as `Target`s (services/<service>/retention.py): the candidates past a
cutoff, as a SELECT of primary keys, and what to do with them. `Retention.run` claims a batch of candidates
with `FOR UPDATE SKIP LOCKED` and acts on it in the same transaction, so two workers running the step at once
never act on one row twice; time is passed in. It stages no event: retention tells no agency anything.
"""

from __future__ import annotations

import csv
import io
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Select, column, delete, func, inspect, select, table
from sqlalchemy.orm import Session

from shared.access_log import allow_purge
from shared.config import env_positive
from shared.db import is_unavailable
from shared.health import HEALTH
from shared.uow import SqlUnitOfWork

Unit = SqlUnitOfWork  # a service's SQL unit of work: the step claims and acts inside one

log = logging.getLogger(__name__)

SHIPPED_TABLE = Path(__file__).resolve().parent.parent / "contracts" / "retention.csv"
ACTIONS = ("erase", "anonymise", "delete")
UNITS = ("days", "months", "years")
SERVICES = ("intake", "advocacy", "notifications")
# The kinds of record the table must give a period for (issue 14 item 4).
KINDS = (
    "dtn_statistics",
    "referral_never_allocated",
    "closed_case",
    "declined_offer_summary",
    "timeline",
    "delivery_log",
    "inbox",
    "outbox",
    "idempotent_responses",
    "access_log",
)
RETENTION_EVERY_S = 3600.0  # RETENTION_EVERY_SECONDS: how often each worker runs the step
BATCH = 200  # rows claimed per transaction


class RetentionError(ValueError):
    """A retention row is malformed, or a kind has no rule in force."""


@dataclass(frozen=True)
class RetentionRule:
    kind: str
    service: str
    period: int
    unit: str
    valid_from: date
    action: str
    note: str = ""

    @property
    def version(self) -> str:
        """How a run cites the rule it applied, e.g. `closed_case@advocacy:2015-11-01`."""
        return f"{self.kind}@{self.service}:{self.valid_from.isoformat()}"

    @property
    def period_text(self) -> str:
        return f"{self.period} {self.unit if self.period != 1 else self.unit.rstrip('s')}"

    def cutoff(self, now: datetime) -> datetime:
        """Records whose clock started before this instant are past the period at `now`."""
        if self.unit == "days":
            return now - timedelta(days=self.period)
        months = self.period * (12 if self.unit == "years" else 1)
        year, month = divmod(now.year * 12 + now.month - 1 - months, 12)
        day = min(now.day, _days_in(year, month + 1))
        return now.replace(year=year, month=month + 1, day=day)


def _days_in(year: int, month: int) -> int:
    following = date(year + (month == 12), month % 12 + 1, 1)
    return (following - timedelta(days=1)).day


class RetentionTable:
    def __init__(self, rows: Iterable[RetentionRule]):
        self.rows = tuple(rows)
        missing = [kind for kind in KINDS if not any(row.kind == kind for row in self.rows)]
        if missing:
            raise RetentionError(f"the retention table has no row for {', '.join(missing)}")

    def rule(self, kind: str, service: str, *, on: date) -> RetentionRule:
        candidates = [r for r in self.rows if r.kind == kind and r.service == service and r.valid_from <= on]
        if not candidates:
            raise RetentionError(f"no {kind} rule for {service} in force on {on.isoformat()}")
        return max(candidates, key=lambda r: r.valid_from)


def parse_table(text: str) -> list[RetentionRule]:
    """Rows from CSV text with the header `kind,service,period,unit,valid_from,action[,note]`."""
    rows = []
    for number, record in enumerate(csv.DictReader(io.StringIO(text)), start=2):
        try:
            rows.append(_row(record))
        except (KeyError, TypeError, ValueError) as exc:
            raise RetentionError(f"retention table line {number}: {exc}") from None
    seen = {(r.kind, r.service, r.valid_from) for r in rows}
    if len(seen) != len(rows):
        raise RetentionError("the retention table has two rows for one kind, service and valid_from")
    return rows


def _row(record: dict[str, Any]) -> RetentionRule:
    kind, service = record["kind"].strip(), record["service"].strip()
    if kind not in KINDS:
        raise RetentionError(f"unknown record kind {kind!r} (known: {', '.join(KINDS)})")
    if service not in SERVICES:
        raise RetentionError(f"{kind}: unknown service {service!r}")
    try:
        period, valid_from = int(record["period"]), date.fromisoformat(record["valid_from"].strip())
    except ValueError:
        raise RetentionError(f"{kind}: period must be a whole number and valid_from a YYYY-MM-DD date") from None
    unit, action = record["unit"].strip(), record["action"].strip()
    if period <= 0:
        raise RetentionError(f"{kind}: period must be positive")
    if unit not in UNITS:
        raise RetentionError(f"{kind}: unit must be one of {', '.join(UNITS)}")
    if action not in ACTIONS:
        raise RetentionError(f"{kind}: action must be one of {', '.join(ACTIONS)}")
    note = (record.get("note") or "").strip()
    if not note:
        raise RetentionError(f"{kind}: the note must give the legal basis or say it is practice")
    return RetentionRule(kind, service, period, unit, valid_from, action, note)


def load_table(text: str | None = None) -> RetentionTable:
    """The shipped table (or `text`, for tests)."""
    return RetentionTable(parse_table(SHIPPED_TABLE.read_text(encoding="utf-8") if text is None else text))


# ---- the step -------------------------------------------------------------------------------------------


class Act(Protocol):
    def __call__(self, uow: Any, ids: Sequence[Any], cutoff: datetime, now: datetime) -> None: ...


def deleting(model: Any, key: str = "id", *still: Any) -> Act:
    """An act that deletes the claimed rows of `model` (by its `key` column; `still` narrows a key shared by
    several rows, e.g. an inbox message id per consumer, to the rows past the cutoff)."""

    def act(uow: Any, ids: Sequence[Any], cutoff: datetime, now: datetime) -> None:
        column = getattr(model, key)
        conditions = [condition(cutoff) for condition in still]
        uow.session.execute(
            delete(model).where(column.in_(list(ids)), *conditions).execution_options(synchronize_session=False)
        )

    return act


@dataclass(frozen=True)
class Target:
    """One store of one record kind: `candidates(cutoff)` selects the primary keys past the period (one
    column), `act` erases, anonymises or deletes them in the claiming transaction; `table` is the table the
    store needs (absent: "no such store yet")."""

    kind: str
    table: str
    candidates: Callable[[datetime], Select]
    act: Act
    columns: tuple[str, ...] = ()  # columns the store must have (a store another issue is adding)
    optional: bool = False  # a store that may not exist yet ("no such store yet"); else its absence is an error


def platform_targets(inbox: Any, outbox: Any | None, idempotency: Any) -> list[Target]:
    """The kit's stores every service has: inbox rows, sent outbox rows, stored idempotent responses, and the
    access log (issue 15; `access_log(id, at)` of shared.access_log, skipped while the table does not exist)."""
    targets = [
        Target(
            "inbox",
            "inbox",
            lambda cutoff: select(inbox.message_id).where(inbox.received_at < cutoff),
            deleting(inbox, "message_id", lambda cutoff: inbox.received_at < cutoff),
        ),
        Target(
            "idempotent_responses",
            "idempotency_keys",
            lambda cutoff: select(idempotency.id).where(idempotency.created_at < cutoff),
            deleting(idempotency),
        ),
    ]
    if outbox is not None:
        targets.insert(
            1,
            Target(
                "outbox",
                "outbox",
                lambda cutoff: select(outbox.id).where(outbox.sent_at.is_not(None), outbox.sent_at < cutoff),
                deleting(outbox),
            ),
        )
    else:
        targets.insert(
            1, Target("outbox", "outbox", _never, _nothing, optional=True)
        )  # "no such store yet" until it has one
    access = table("access_log", column("id"), column("at"))
    targets.append(
        Target(
            "access_log",
            "access_log",
            lambda cutoff: select(access.c.id).where(access.c.at < cutoff),
            _purge_access_log,
            columns=("id", "at"),
            optional=True,
        )
    )
    return targets


def _purge_access_log(uow: Any, ids: Sequence[Any], cutoff: datetime, now: datetime) -> None:
    """The access log is append-only (shared.access_log): this transaction alone declares the cutoff below
    which its trigger lets rows go, and deletes the claimed ones."""
    allow_purge(uow.session, cutoff)
    access = table("access_log", column("id"))
    uow.session.execute(delete(access).where(access.c.id.in_(list(ids))))


def _never(cutoff: datetime) -> Select:
    raise AssertionError("a store that does not exist is never queried")


def _nothing(uow: Any, ids: Sequence[Any], cutoff: datetime, now: datetime) -> None:
    raise AssertionError("a store that does not exist is never acted on")


@dataclass(frozen=True)
class Outcome:
    service: str
    kind: str
    count: int
    rule: RetentionRule | None  # None: the store does not exist yet
    skipped: str = ""

    def line(self, *, done: bool) -> str:
        if self.rule is None:
            return f"{self.service:<13} {self.kind:<24} skipped: {self.skipped}"
        verb = {"erase": "erased", "anonymise": "anonymised", "delete": "deleted"}[self.rule.action]
        what = f"{verb} {self.count}" if done else f"due {self.count} ({self.rule.action})"
        return f"{self.service:<13} {self.kind:<24} {what:<20} rule {self.rule.version}, {self.rule.period_text}"


class Retention:
    """The retention step of one service over its database."""

    def __init__(
        self,
        service: str,
        units: Callable[[], Unit],
        targets: Sequence[Target],
        table: RetentionTable | None = None,
        *,
        batch: int = BATCH,
        after_erasure: Callable[[], None] | None = None,
    ):
        """`after_erasure` runs once a transaction that erased has committed (shared.db.scrub_files, for a
        service whose unit of work does not scrub by itself)."""
        self.service, self._units, self.targets, self.batch = service, units, tuple(targets), batch
        self._after_erasure = after_erasure
        self.table = table or load_table()
        for target in self.targets:  # refused at start, not at the first run
            self.table.rule(target.kind, service, on=date.max)

    def due(self, now: datetime) -> list[Outcome]:
        """What is past its period at `now`, per kind, without changing anything."""
        outcomes = []
        with self._units() as uow:
            session = uow.session
            present = self._present(session)
            for target in self.targets:
                rule = self.table.rule(target.kind, self.service, on=now.date())
                if target.table not in present:
                    outcomes.append(Outcome(self.service, target.kind, 0, None, "no such store yet"))
                    continue
                ids = target.candidates(rule.cutoff(now)).subquery()
                count = session.scalar(select(func.count()).select_from(ids)) or 0
                outcomes.append(Outcome(self.service, target.kind, count, rule))
        return outcomes

    def run(self, now: datetime) -> list[Outcome]:
        """Act on everything past its period at `now`, a batch per transaction, each row once across workers."""
        with self._units() as uow:
            present = self._present(uow.session)
        outcomes = []
        for target in self.targets:
            rule = self.table.rule(target.kind, self.service, on=now.date())
            if target.table not in present:
                outcomes.append(Outcome(self.service, target.kind, 0, None, "no such store yet"))
                continue
            done = 0
            while True:
                acted = self._claim_and_act(target, rule, now)
                done += acted
                if acted < self.batch:
                    break
            if done:
                log.info(
                    "retention applied",
                    extra={"service": self.service, "kind": target.kind, "count": done, "rule": rule.version},
                )
            outcomes.append(Outcome(self.service, target.kind, done, rule))
        return outcomes

    def _claim_and_act(self, target: Target, rule: RetentionRule, now: datetime) -> int:
        # The claim and the act in one transaction: rows another worker holds are skipped, and a row it acted
        # on no longer matches once its transaction commits, so each row is acted on once.
        with self._units() as uow:
            claim = target.candidates(rule.cutoff(now)).limit(self.batch).with_for_update(skip_locked=True)
            ids = list(uow.session.scalars(claim))
            if ids:
                target.act(uow, ids, rule.cutoff(now), now)
        if ids and rule.action == "erase" and self._after_erasure is not None:
            self._after_erasure()
        return len(ids)

    def _present(self, session: Session) -> set[str]:
        """The targets' tables that exist with the columns they need."""
        inspector = inspect(session.connection())
        names = set(inspector.get_table_names())
        present = set()
        for target in self.targets:
            if target.table in names:
                have = {c["name"] for c in inspector.get_columns(target.table)} if target.columns else set()
                if set(target.columns) <= have:
                    present.add(target.table)
        missing = sorted({t.table for t in self.targets if not t.optional and t.table not in present})
        if missing:
            raise RetentionError(
                f"the {self.service} database has no {', '.join(missing)} table: run `referrals-migrate {self.service}`"
            )
        return present


class RetentionLoop:
    """Runs the step every `interval` seconds (RETENTION_EVERY_SECONDS), in every worker at once if need be:
    the claim decides who acts on each row. `now` is injectable for tests."""

    def __init__(self, retention: Retention, interval: float, now: Callable[[], datetime]):
        self._retention, self._interval, self._now = retention, interval, now

    def run(self, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    self._retention.run(self._now())
                    HEALTH.up("database")
                except Exception as exc:
                    if not is_unavailable(exc):
                        raise
                    HEALTH.down("database", exc.__class__.__name__)  # its text may hold the parameters
                    log.warning(
                        "database unavailable; retention runs at the next tick",
                        extra={"error": exc.__class__.__name__},
                    )
                stop.wait(self._interval)
        finally:
            HEALTH.up("database")


def retention_loop(retention: Retention, env: Mapping[str, str], now: Callable[[], datetime]) -> RetentionLoop:
    """The worker's loop, every `RETENTION_EVERY_SECONDS` (default an hour)."""
    every = env_positive(env, "RETENTION_EVERY_SECONDS", RETENTION_EVERY_S, unit="seconds")
    return RetentionLoop(retention, every, now)
