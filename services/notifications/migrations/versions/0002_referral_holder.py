"""which provider holds each referral (a provider's events are accepted only from it)

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("referral_owners") as table:
        table.add_column(sa.Column("provider_id", sa.String(length=63), nullable=True))
        table.add_column(sa.Column("provider_since", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("referral_owners") as table:
        table.drop_column("provider_since")
        table.drop_column("provider_id")
