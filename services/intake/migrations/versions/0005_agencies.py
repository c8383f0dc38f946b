"""agencies: the agency directory (org id, name, kind, the local authorities it covers), and the child's
local authority resolved from it at referral (issue 13)

Revision ID: 0005_agencies
Revises: 0004
Create Date: 2026-12-01 21:00:00

Referrals stored before this revision keep no local authority org (null): their events name none.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_agencies"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agencies",
        sa.Column("org_id", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("local_authority_codes", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("org_id"),
    )
    with op.batch_alter_table("agencies", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agencies_kind"), ["kind"], unique=False)

    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("local_authority_org_id", sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.drop_column("local_authority_org_id")

    with op.batch_alter_table("agencies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agencies_kind"))
    op.drop_table("agencies")
