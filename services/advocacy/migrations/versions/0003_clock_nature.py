"""clocks carry their nature: deadline, minimum or support_end (issue 12)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 18:05:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# The nature each kind had when this ran (services.advocacy.continuity.deadlines.NATURE_OF), copied so that
# a later change to the rules does not rewrite history.
NATURE_OF = {
    "rg_decision": "deadline",
    "turning_18": "deadline",
    "recovery_period": "minimum",
    "cg_not_before": "minimum",
    "move_on": "support_end",
    "exit_period": "support_end",
}


def upgrade() -> None:
    with op.batch_alter_table("clocks") as batch:
        batch.add_column(sa.Column("nature", sa.String(length=20), nullable=True))
    clocks = sa.table("clocks", sa.column("kind", sa.String), sa.column("nature", sa.String))
    for kind, nature in NATURE_OF.items():
        op.execute(clocks.update().where(clocks.c.kind == kind).values(nature=nature))
    op.execute(clocks.update().where(clocks.c.nature.is_(None)).values(nature="deadline"))
    with op.batch_alter_table("clocks") as batch:
        batch.alter_column("nature", existing_type=sa.String(length=20), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("clocks") as batch:
        batch.drop_column("nature")
