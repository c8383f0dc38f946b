"""The access_log table (shared.access_log) as each service's migration creates and drops it: one definition,
so the three services' tables and their append-only guards cannot drift apart.

On PostgreSQL a trigger refuses UPDATE, DELETE and TRUNCATE by the service's connection, except a DELETE of
rows older than the cutoff the retention step declares in its own transaction; on SQLite a trigger refuses
UPDATE (shared.access_log.guard_ddl).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shared.access_log import guard_ddl


def create_access_log() -> None:
    op.create_table(
        "access_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sub", sa.String(length=200), nullable=False),
        sa.Column("org", sa.String(length=200), nullable=False),
        sa.Column("subject_kind", sa.String(length=30), nullable=False),
        sa.Column("subject_id", sa.String(length=64), nullable=False),
        sa.Column("what", sa.String(length=60), nullable=False),
        sa.Column("purpose", sa.String(length=120), nullable=False),
        sa.Column("trace_id", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("access_log", schema=None) as batch_op:
        batch_op.create_index("ix_access_log_at", ["at"], unique=False)
        batch_op.create_index("ix_access_log_subject_id", ["subject_id"], unique=False)
    for statement in guard_ddl(op.get_bind().dialect.name, create=True):
        op.execute(statement)


def drop_access_log() -> None:
    for statement in guard_ddl(op.get_bind().dialect.name, create=False):
        op.execute(statement)
    with op.batch_alter_table("access_log", schema=None) as batch_op:
        batch_op.drop_index("ix_access_log_subject_id")
        batch_op.drop_index("ix_access_log_at")
    op.drop_table("access_log")
