"""a case's consent records (the advocate's, sent to intake; a withdrawal intake told of) and turning_18's decision

Revision ID: 0004_consent
Revises: 0003
Create Date: 2026-12-01 20:55:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_consent"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "case_consent_records",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("provider_id", sa.String(length=64), nullable=False),
        sa.Column("case_id", sa.String(length=36), nullable=False),
        sa.Column("purpose", sa.String(length=20), nullable=False),
        sa.Column("given", sa.Boolean(), nullable=False),
        sa.Column("obtained_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("obtained_by", sa.String(length=200), nullable=False),
        sa.Column("interpreter_used", sa.Boolean(), nullable=False),
        sa.Column("recipients", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("recorded_by", sa.String(length=200), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("case_consent_records", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_consent_records_case_id"), ["case_id"], unique=False)
    with op.batch_alter_table("transitions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("decision", sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("transitions", schema=None) as batch_op:
        batch_op.drop_column("decision")
    with op.batch_alter_table("case_consent_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_consent_records_case_id"))
    op.drop_table("case_consent_records")
