"""a child's local authority on the case: the children's services org intake resolved at referral, and its
name, disclosed with the referral (issue 13)

Revision ID: 0006_local_authority
Revises: 0005
Create Date: 2026-12-01 21:05:00

Cases opened before this revision name none (null): their events name no local authority.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_local_authority"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("local_authority_org_id", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("local_authority_name", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_column("local_authority_name")
        batch_op.drop_column("local_authority_org_id")
