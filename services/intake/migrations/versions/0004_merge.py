"""join the three migrations written side by side for issue 12: consent records, the Duty to Notify record,
Idempotency-Key (no schema change of its own)

Revision ID: 0004
Revises: 0003_consent, 0003_duty_to_notify, 0003_idempotency
Create Date: 2026-12-01 20:45:00.000000
"""

revision = "0004"
down_revision = ("0003_consent", "0003_duty_to_notify", "0003_idempotency")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
