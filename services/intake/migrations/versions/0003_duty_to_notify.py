"""duty to notify: the anonymous DtN records, stored apart; the rule a referral fell under

Revision ID: 0003_duty_to_notify
Revises: 0002
Create Date: 2026-12-01 20:50:00

The pathway column (VARCHAR(20)) already holds every pathway: nrm (3), duty_to_notify (14), advocacy_only
(13), not_notified (12); it needs no widening.

Referrals recorded as duty_to_notify before this revision keep the stripped body they were stored with; no
anonymous record is made for them here (their statistics were counted from those rows).
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_duty_to_notify"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "duty_to_notify_records",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("rule", sa.String(length=40), nullable=False),
        sa.Column("notifying_authority_kind", sa.String(length=20), nullable=False),
        sa.Column("notified_month", sa.String(length=7), nullable=False),
        sa.Column("region", sa.String(length=40), nullable=False),
        sa.Column("local_authority", sa.String(length=9), nullable=True),
        sa.Column("nationality", sa.String(length=7), nullable=False),
        sa.Column("sex", sa.String(length=10), nullable=False),
        sa.Column("exploitation_types", sa.JSON(), nullable=False),
        sa.Column("exploitation_locations", sa.JSON(), nullable=False),
        sa.Column("exploited_as_child", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("duty_to_notify_records", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_duty_to_notify_records_notified_month"), ["notified_month"], unique=False)

    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("duty_to_notify_rule", sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.drop_column("duty_to_notify_rule")

    with op.batch_alter_table("duty_to_notify_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_duty_to_notify_records_notified_month"))

    op.drop_table("duty_to_notify_records")
