"""indexes for the figures /metrics reads at every scrape (issue 16; services.intake.figures): offers by
status and deadline, open escalations, erasure requests not yet confirmed

Revision ID: 0011_figures_indexes
Revises: 0010_data_keys
Create Date: 2026-12-02 12:30:00
"""

from alembic import op

revision = "0011_figures_indexes"
down_revision = "0010_data_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("offers", schema=None) as batch_op:
        batch_op.create_index("ix_offers_status_respond_by", ["status", "respond_by"], unique=False)
    with op.batch_alter_table("escalations", schema=None) as batch_op:
        batch_op.create_index("ix_escalations_resolved_at", ["resolved_at"], unique=False)
    with op.batch_alter_table("erasure_recipients", schema=None) as batch_op:
        batch_op.create_index("ix_erasure_recipients_unconfirmed", ["confirmed_at", "requested_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("erasure_recipients", schema=None) as batch_op:
        batch_op.drop_index("ix_erasure_recipients_unconfirmed")
    with op.batch_alter_table("escalations", schema=None) as batch_op:
        batch_op.drop_index("ix_escalations_resolved_at")
    with op.batch_alter_table("offers", schema=None) as batch_op:
        batch_op.drop_index("ix_offers_status_respond_by")
