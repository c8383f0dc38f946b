"""erasure: the record of recipients gains its recipient kind (provider | notifications | org) and events'
recipients without a subject; a referral's erasure, and each recipient asked to erase (issue 14)

Revision ID: 0006_erasure
Revises: 0005_agencies
Create Date: 2026-12-01 23:55:00

Disclosures logged before this revision were all full fetches: by the provider holding the case
(`case_opening`) or by an organisation the person agreed to share with (`data_sharing`).
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_erasure"
down_revision = "0005_agencies"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("disclosures", schema=None) as batch_op:
        batch_op.add_column(sa.Column("recipient_kind", sa.String(length=20), nullable=False, server_default="org"))
        batch_op.alter_column("recipient_sub", existing_type=sa.String(length=200), nullable=True)
    op.execute("UPDATE disclosures SET recipient_kind = 'provider' WHERE purpose = 'case_opening'")
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))

    op.create_table(
        "erasures",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("referral_id", sa.String(length=36), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("requested_by", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("kept", sa.JSON(), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["referral_id"], ["referrals.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("referral_id", name="uq_erasures_referral"),
    )
    op.create_table(
        "erasure_recipients",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("erasure_id", sa.String(length=36), nullable=False),
        sa.Column("recipient", sa.String(length=80), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("kept", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["erasure_id"], ["erasures.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("erasure_id", "recipient", name="uq_erasure_recipients_recipient"),
    )


def downgrade() -> None:
    op.drop_table("erasure_recipients")
    op.drop_table("erasures")
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.drop_column("erased_at")
    with op.batch_alter_table("disclosures", schema=None) as batch_op:
        batch_op.alter_column("recipient_sub", existing_type=sa.String(length=200), nullable=False)
        batch_op.drop_column("recipient_kind")
