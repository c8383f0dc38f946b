"""provider handover offers and answers; a relocation's new region (issue 12 item 6)

Revision ID: 0004_handover
Revises: 0003
Create Date: 2026-12-01 20:40:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_handover"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "handovers",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("provider_id", sa.String(length=64), nullable=False),
        sa.Column("from_provider_id", sa.String(length=64), nullable=False),
        sa.Column("referral_id", sa.String(length=64), nullable=False),
        sa.Column("from_case_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("offered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("respond_by", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("responded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("advocate_id", sa.String(length=36), nullable=True),
        sa.Column("decline_reason", sa.String(length=20), nullable=True),
        sa.Column("decline_note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["advocate_id"], ["advocates.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("handovers", schema=None) as batch_op:
        batch_op.create_index("ix_handovers_provider_status", ["provider_id", "status", "respond_by"], unique=False)
        batch_op.create_index(batch_op.f("ix_handovers_referral_id"), ["referral_id"], unique=False)
    with op.batch_alter_table("transitions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("new_region", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("offered_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("respond_by", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("outcome", sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("transitions", schema=None) as batch_op:
        batch_op.drop_column("outcome")
        batch_op.drop_column("respond_by")
        batch_op.drop_column("offered_at")
        batch_op.drop_column("new_region")
    with op.batch_alter_table("handovers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_handovers_referral_id"))
        batch_op.drop_index("ix_handovers_provider_status")
    op.drop_table("handovers")
