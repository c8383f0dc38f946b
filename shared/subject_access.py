"""Subject access (UK GDPR Art. 15): everything one service holds about the person of one referral.

Each service answers `GET /v1/subject-access/{referral_id}` with the rows of every table that is about the
referral: a table with a `referral_id` column, the root table named by the service (intake's `referrals`),
and, following foreign keys, every table whose rows point at rows already collected (a case's notes point at
the case, a timeline entry at the offer). So a table a later change adds (an erasure or rectification record,
say) joins the answer as its own section without an edit here or in the service: that is the extension point.
A service leaves out by name what is not the person's data or must not leave it (`skip`: the outbox, the inbox,
blind search tokens) and the columns that are secrets (`hidden`). A sealed field (shared.sealed) is answered
opened, as the person's data it is; the wrapped data keys (`data_keys`) never leave.

Who may ask: a platform DPO (`org_kind` `ops`) or the platform's own service token (`org_kind` `service`), with
the scope `referrals:erase` either way. The answer is personal data: it is never logged (only counts are).
"""

from __future__ import annotations

import base64
import functools
import json
import logging
from collections.abc import Callable, Collection, Mapping
from datetime import date, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from flask_smorest import abort
from marshmallow import Schema, fields
from sqlalchemy import Table, or_, select
from sqlalchemy.orm import DeclarativeBase, Session

from shared.auth import Principal, current_principal, requires
from shared.clock import utcnow

log = logging.getLogger(__name__)

SCOPE = "referrals:erase"
ASKERS = ("ops", "service")  # a platform DPO, or the platform's service token
Sections = dict[str, list[dict[str, Any]]]


class SubjectAccessSchema(Schema):
    service = fields.String(metadata={"description": "The service answering: intake, advocacy or notifications."})
    provider_id = fields.String(
        allow_none=True, metadata={"description": "The charity answering (advocacy), else null."}
    )
    referral_id = fields.String()
    generated_at = fields.DateTime()
    sections = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.Dict()),
        metadata={
            "description": "One section per record kind (its table), each with its rows: column -> value, dates "
            "ISO 8601. Every kind the service keeps about a referral is present, empty when it holds none."
        },
    )


def may_ask(principal: Principal) -> bool:
    return principal.org_kind in ASKERS and principal.has(SCOPE)


def guarded(view: Callable[..., Any]) -> Callable[..., Any]:
    """The route's guard: a valid token with `referrals:erase`, of a DPO (`ops`) or the platform (`service`)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not may_ask(current_principal()):
            abort(403, message="Only a platform DPO (org_kind ops) or the platform's service token may ask.")
        return view(*args, **kwargs)

    return requires(SCOPE)(wrapper)


def answer(service: str, referral_id: str, sections: Sections, *, provider_id: str | None = None) -> dict:
    log.info(
        "subject access answered",
        extra={"referral_id": referral_id, "sections": len(sections), "rows": sum(map(len, sections.values()))},
    )
    return {
        "service": service,
        "provider_id": provider_id,
        "referral_id": referral_id,
        "generated_at": utcnow(),
        "sections": sections,
    }


def collect(
    session: Session,
    base: type[DeclarativeBase],
    referral_id: str,
    *,
    root: str | None = None,
    skip: Collection[str] = (),
    hidden: Mapping[str, Collection[str]] | None = None,
) -> Sections:
    """The rows about `referral_id` of every table of `base` that is about a referral, keyed by table name.

    `root` names a table whose primary key is the referral id; `skip` leaves tables out; `hidden` leaves out
    columns per table. A table's rows are those with `referral_id` = the id, or whose foreign key points at a
    row collected from another table (a table is read after those it points at)."""
    tables = {t.name: t for t in base.metadata.sorted_tables if t.name not in {*skip, "data_keys"}}
    sealed_by_table = {
        m.persist_selectable.description: m for m in base.registry.mappers if getattr(m.class_, "__sealed__", ())
    }
    collected: dict[str, list[Any]] = {}  # table -> primary keys collected (single-column keys)
    sections: Sections = {}
    for name, table in tables.items():  # sorted_tables: a table comes after those its foreign keys point at
        conditions = []
        if name == root:
            conditions.append(_key(table) == referral_id)
        if "referral_id" in table.c:
            conditions.append(table.c.referral_id == referral_id)
        for fk in table.foreign_keys:
            target = fk.column.table.name
            if target != name and target in collected:
                conditions.append(fk.parent.in_(collected[target]) if collected[target] else fk.parent.is_(None))
        if not conditions:
            continue
        order = list(table.primary_key.columns)
        rows = [dict(row._mapping) for row in session.execute(select(table).where(or_(*conditions)).order_by(*order))]
        if name in sealed_by_table:
            rows = [_opened(session, sealed_by_table[name], row) for row in rows]
        keys = list(table.primary_key.columns)
        if len(keys) == 1:
            collected[name] = [row[keys[0].name] for row in rows]
        drop = set((hidden or {}).get(name, ()))
        sections[name] = [{k: jsonable(v) for k, v in row.items() if k not in drop} for row in rows]
    return sections


def _opened(session: Session, mapper: Any, row: dict[str, Any]) -> dict[str, Any]:
    """`row` (column -> value) of a mapped class with sealed fields, each sealed column replaced by its
    plaintext (its field's empty value once the referral's data key was destroyed)."""
    from shared.sealed import data_keys  # the kit's sealing; notifications seals nothing and never gets here

    attributes = SimpleNamespace(**{a.key: row[a.columns[0].name] for a in mapper.column_attrs})
    opened = dict(row)
    for field in mapper.class_.__sealed__:
        column = mapper.attrs[field.column].columns[0].name
        plaintext = (
            data_keys(session).open(field.referral(attributes), field.field, row[column]) if row[column] else None
        )
        opened[column] = field.empty if plaintext is None else json.loads(plaintext)
    return opened


def rows_of(session: Session, table: Table, ids: Collection[Any], *, hidden: Collection[str] = ()) -> list[dict]:
    """The rows of `table` whose primary key is one of `ids` (a table the person's rows point at)."""
    if not ids:
        return []
    key = _key(table)
    found = session.execute(select(table).where(key.in_(list(ids))).order_by(key))
    return [{k: jsonable(v) for k, v in dict(row._mapping).items() if k not in hidden} for row in found]


def _key(table: Table) -> Any:
    return next(iter(table.primary_key.columns))


def jsonable(value: Any) -> Any:
    """A column's value as JSON: dates and times ISO 8601, bytes base64, containers converted through."""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    return value
