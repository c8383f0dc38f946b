"""join the three migrations written side by side for issue 13: the contact log, notes and risk flags (0006_care),
the child's local authority (0006_local_authority), the page's blind search index (0006_search)

Revision ID: 0007
Revises: 0006_care, 0006_local_authority, 0006_search
Create Date: 2026-12-01 21:30:00.000000
"""

revision = "0007"
down_revision = ("0006_care", "0006_local_authority", "0006_search")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
