"""page sessions: the advocate's page keeps its sessions server-side, the cookie only their random id, so a
signed-out or expired session is refused wherever its cookie was copied (issue 15). Sessions signed in before
this (the advocate's id in the cookie) are no longer read: their advocates sign in again.

Revision ID: 0008_page_sessions
Revises: 0007
Create Date: 2026-12-02 04:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_page_sessions"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "page_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("sub", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("page_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_page_sessions_expires_at"), ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("page_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_page_sessions_expires_at"))
    op.drop_table("page_sessions")
