"""routing: deadlines, escalations, sex-specific providers, reported capacity

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 05:43:45.522532
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "escalations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("referral_id", sa.String(length=36), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["referrals.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("escalations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_escalations_referral_id"), ["referral_id"], unique=False)

    with op.batch_alter_table("offers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("respond_by", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("offered_by", sa.String(length=200), nullable=False, server_default="routing"))
        batch_op.create_index(batch_op.f("ix_offers_respond_by"), ["respond_by"], unique=False)

    with op.batch_alter_table("providers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sexes", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("capacity_reported_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("providers", schema=None) as batch_op:
        batch_op.drop_column("capacity_reported_at")
        batch_op.drop_column("sexes")

    with op.batch_alter_table("offers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_offers_respond_by"))
        batch_op.drop_column("offered_by")
        batch_op.drop_column("respond_by")

    with op.batch_alter_table("escalations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_escalations_referral_id"))

    op.drop_table("escalations")
