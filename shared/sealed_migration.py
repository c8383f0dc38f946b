"""What a migration needs to seal existing plaintext columns (shared.sealed) and to open them again on downgrade.

The KEK is the configured one (DATA_KEK_FILE, or dev's var/keys/dev-data-kek.b64 outside production): a
database with rows to convert and no KEK stops the migration with one line saying what to set.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import op

from shared import crypto
from shared.clock import utcnow
from shared.config import ConfigError


def create_data_keys() -> None:
    op.create_table(
        "data_keys",
        sa.Column("referral_id", sa.String(length=64), primary_key=True),
        sa.Column("kek_id", sa.String(length=64), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def keks() -> crypto.KekRing:
    env = os.environ
    production = bool(env.get("AUTH_TOKEN_URL")) and not env.get("AUTH_PRIVATE_KEY_FILE")
    try:
        return crypto.keks_from_env(env, production=production)
    except ConfigError as exc:
        raise SystemExit(f"migration: rows must be sealed, but {exc}: set DATA_KEK_FILE and migrate again") from None


class Keys:
    """Data keys of the database being migrated: read, or created for a referral that has none yet."""

    def __init__(self, bind: sa.Connection, ring: crypto.KekRing):
        self._bind, self._ring = bind, ring
        self._keys: dict[str, bytes] = {}

    def key(self, referral_id: str, *, create: bool) -> bytes | None:
        if referral_id in self._keys:
            return self._keys[referral_id]
        row = self._bind.execute(
            sa.text("SELECT kek_id, wrapped FROM data_keys WHERE referral_id = :r"), {"r": referral_id}
        ).first()
        if row is not None:
            self._keys[referral_id] = self._ring.by_id(row.kek_id).unwrap(row.wrapped)
        elif create:
            key, kek = crypto.new_data_key(), self._ring.current
            self._bind.execute(
                sa.text("INSERT INTO data_keys (referral_id, kek_id, wrapped, created_at) VALUES (:r, :k, :w, :c)"),
                {"r": referral_id, "k": kek.id, "w": kek.wrap(key), "c": utcnow()},
            )
            self._keys[referral_id] = key
        return self._keys.get(referral_id)


def seal_column(
    table: str,
    column: str,
    field: str,
    referral_sql: str,
    *,
    is_json: bool,
    nullable: bool = True,
    erased: Callable[[Any], bool] = lambda row: False,
) -> None:
    """Replace plaintext `table.column` (JSON or text) by its ciphertext: `referral_sql` selects `id`, `value`
    and `referral_id` (and any column `erased` reads); an erased row's value becomes b"" with no key made."""
    bind = op.get_bind()
    with op.batch_alter_table(table) as batch:
        batch.add_column(sa.Column(f"{column}_sealed", sa.LargeBinary(), nullable=True))
    rows = bind.execute(sa.text(referral_sql)).mappings().all()
    keys = Keys(bind, keks()) if rows else None
    target = sa.table(table, sa.column("id"), sa.column(f"{column}_sealed", sa.LargeBinary()))
    for row in rows:
        value = row["value"]
        if isinstance(value, str) and is_json:  # SQLite's JSON arrives as text, PostgreSQL's parsed
            value = json.loads(value)
        if value is None:
            sealed = None
        elif keys is None or erased(row):
            sealed = b""
        else:
            key = keys.key(row["referral_id"], create=True)
            assert key is not None
            plaintext = json.dumps(value, ensure_ascii=False).encode()
            sealed = crypto.seal(key, plaintext, crypto.associated_data(row["referral_id"], field))
        bind.execute(target.update().where(target.c.id == row["id"]).values({f"{column}_sealed": sealed}))
    with op.batch_alter_table(table) as batch:
        batch.drop_column(column)
    with op.batch_alter_table(table) as batch:
        batch.alter_column(f"{column}_sealed", new_column_name=column, nullable=nullable)


def open_column(
    table: str,
    column: str,
    field: str,
    referral_sql: str,
    plain: sa.types.TypeEngine,
    empty: Any,
    *,
    nullable: bool = True,
) -> None:
    """The downgrade of seal_column: `referral_sql` selects `id`, `value` (the ciphertext) and `referral_id`."""
    bind = op.get_bind()
    with op.batch_alter_table(table) as batch:
        batch.add_column(sa.Column(f"{column}_plain", plain, nullable=True))
    rows = bind.execute(sa.text(referral_sql)).mappings().all()
    keys = Keys(bind, keks()) if rows else None
    target = sa.table(table, sa.column("id"), sa.column(f"{column}_plain", plain))
    for row in rows:
        key = keys.key(row["referral_id"], create=False) if keys and row["value"] else None
        aad = crypto.associated_data(row["referral_id"], field)
        if key:
            value = json.loads(crypto.open_sealed(key, row["value"], aad))
        else:
            value = None if row["value"] is None else empty
        bind.execute(target.update().where(target.c.id == row["id"]).values({f"{column}_plain": value}))
    with op.batch_alter_table(table) as batch:
        batch.drop_column(column)
    with op.batch_alter_table(table) as batch:
        batch.alter_column(f"{column}_plain", new_column_name=column, nullable=nullable)
