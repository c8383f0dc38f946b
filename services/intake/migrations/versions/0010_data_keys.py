"""data_keys, and referrals.body sealed under each referral's data key (issue 15 part 1; shared.sealed)

Existing bodies are sealed with the configured KEK (DATA_KEK_FILE; dev's var/keys/dev-data-kek.b64 outside
production); an erased referral's body becomes empty, with no key made for it.

Revision ID: 0010_data_keys
Revises: 0009_access_log
Create Date: 2026-12-02 04:10:00
"""

import sqlalchemy as sa
from alembic import op

from shared.sealed_migration import create_data_keys, open_column, seal_column

revision = "0010_data_keys"
down_revision = "0009_access_log"
branch_labels = None
depends_on = None

ROWS = "SELECT id, id AS referral_id, body AS value, erased_at FROM referrals"


def _erased(row) -> bool:
    return row["erased_at"] is not None


def upgrade() -> None:
    create_data_keys()
    seal_column("referrals", "body", "referrals.body", ROWS, is_json=True, nullable=False, erased=_erased)


def downgrade() -> None:
    open_column("referrals", "body", "referrals.body", ROWS, sa.JSON(), {}, nullable=False)
    op.drop_table("data_keys")
