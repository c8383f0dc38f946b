"""join the three migrations written side by side for issue 12: case consent records and turning_18's
decision, provider handover offers and a relocation's region, Idempotency-Key (no schema change of its own)

Revision ID: 0005
Revises: 0004_consent, 0004_handover, 0004_idempotency
Create Date: 2026-12-01 20:45:00.000000
"""

revision = "0005"
down_revision = ("0004_consent", "0004_handover", "0004_idempotency")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
