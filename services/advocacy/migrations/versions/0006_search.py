"""the blind index the advocate's page searches: a keyed HMAC per case and name token or reference (issue 13)

Revision ID: 0006_search
Revises: 0005
Create Date: 2026-12-01 21:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_search"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "case_search_tokens",
        sa.Column("case_id", sa.String(length=36), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("provider_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"]),
        sa.PrimaryKeyConstraint("case_id", "digest"),
    )
    with op.batch_alter_table("case_search_tokens", schema=None) as batch_op:
        batch_op.create_index("ix_case_search_tokens_digest", ["provider_id", "digest"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("case_search_tokens", schema=None) as batch_op:
        batch_op.drop_index("ix_case_search_tokens_digest")
    op.drop_table("case_search_tokens")
