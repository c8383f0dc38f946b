"""rectification: each correction of a referral by its referring organisation (UK GDPR Art. 16): when, by
whom and which sections, never the values (issue 14)

Revision ID: 0007_rectification
Revises: 0006_erasure
Create Date: 2026-12-01 23:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_rectification"
down_revision = "0006_erasure"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rectifications",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("referral_id", sa.String(length=36), nullable=False),
        sa.Column("rectified_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("org_id", sa.String(length=100), nullable=False),
        sa.Column("sub", sa.String(length=200), nullable=False),
        sa.Column("sections", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["referral_id"], ["referrals.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("rectifications", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rectifications_referral_id"), ["referral_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("rectifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rectifications_referral_id"))
    op.drop_table("rectifications")
