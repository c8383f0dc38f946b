"""data_keys, and the personal columns sealed under each referral's data key (issue 15 part 1; shared.sealed)

Sealed: cases.referral, case_notes.text, case_contacts.note, risk_flags.note and the decline notes of offers
and handovers. cases.is_child keeps in clear what the no-contact rule's query counted from the referral's JSON.
Existing rows are sealed with the configured KEK (DATA_KEK_FILE; dev's var/keys/dev-data-kek.b64 outside
production).

Revision ID: 0010_data_keys
Revises: 0009_access_log
Create Date: 2026-12-02 04:10:00
"""

import json

import sqlalchemy as sa
from alembic import op

from shared.sealed_migration import create_data_keys, open_column, seal_column

revision = "0010_data_keys"
down_revision = "0009_access_log"
branch_labels = None
depends_on = None

OF_CASE = "SELECT t.id, t.{column} AS value, c.referral_id FROM {table} t JOIN cases c ON c.id = t.case_id"
SEALED = (  # table, column, is JSON, nullable, the rows with their referral
    ("cases", "referral", True, True, "SELECT id, referral AS value, referral_id FROM cases"),
    ("offers", "decline_note", False, True, "SELECT id, decline_note AS value, referral_id FROM offers"),
    ("handovers", "decline_note", False, True, "SELECT id, decline_note AS value, referral_id FROM handovers"),
    ("case_notes", "text", False, False, OF_CASE.format(table="case_notes", column="text")),
    ("case_contacts", "note", False, True, OF_CASE.format(table="case_contacts", column="note")),
    ("risk_flags", "note", False, True, OF_CASE.format(table="risk_flags", column="note")),
)


def upgrade() -> None:
    create_data_keys()
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("is_child", sa.Boolean(), server_default=sa.false(), nullable=False))
    bind = op.get_bind()
    for case_id, referral in bind.execute(sa.text("SELECT id, referral FROM cases WHERE referral IS NOT NULL")):
        referral = json.loads(referral) if isinstance(referral, str) else referral
        if referral and referral.get("is_child"):
            bind.execute(sa.text("UPDATE cases SET is_child = :t WHERE id = :i"), {"t": True, "i": case_id})
    for table, column, is_json, nullable, rows in SEALED:
        seal_column(table, column, f"{table}.{column}", rows, is_json=is_json, nullable=nullable)


def downgrade() -> None:
    for table, column, is_json, nullable, rows in reversed(SEALED):
        plain = sa.JSON() if is_json else sa.Text()
        open_column(table, column, f"{table}.{column}", rows, plain, None if nullable else "", nullable=nullable)
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("is_child")
    op.drop_table("data_keys")
