"""a subscription's previous secret and when it stops signing (secret rotation); deliveries about no referral
(webhook.ping)

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscriptions") as table:
        table.add_column(sa.Column("previous_secret", sa.String(length=200), nullable=True))
        table.add_column(sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("deliveries") as table:
        table.alter_column("referral_id", existing_type=sa.String(length=64), nullable=True)


def downgrade() -> None:
    # A ping's delivery names no referral: it cannot stay once the column is required again.
    op.execute("DELETE FROM deliveries WHERE referral_id IS NULL")
    with op.batch_alter_table("deliveries") as table:
        table.alter_column("referral_id", existing_type=sa.String(length=64), nullable=False)
    with op.batch_alter_table("subscriptions") as table:
        table.drop_column("previous_secret_expires_at")
        table.drop_column("previous_secret")
