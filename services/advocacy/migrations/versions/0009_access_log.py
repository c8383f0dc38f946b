"""access_log: who read which record, when and why (issue 15 item 2; shared.access_log), append-only

The table and its append-only guards: shared.access_log_migration, shared by the three services.

Revision ID: 0009_access_log
Revises: 0008_page_sessions
Create Date: 2026-12-02 04:00:00
"""

from shared.access_log_migration import create_access_log, drop_access_log

revision = "0009_access_log"
down_revision = "0008_page_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_access_log()


def downgrade() -> None:
    drop_access_log()
