"""keyed hashes: a referral's body hash becomes the HMAC of its SHA-256 under DTN_HMAC_KEY, and a referral
recorded anonymously (the Duty to Notify pathway) keeps its external reference only as a keyed hash
(`reference_keyed`), so neither can be recomputed from the body or the reference without the key (issue 15).

The key is the one the service will use (DTN_HMAC_KEY; the dev key where the service would use it). The
downgrade drops the flag but cannot restore the plain hashes: a replay of a referral stored before it answers
409, and an anonymous referral's reference stays a hash.

Revision ID: 0008_keyed_hashes
Revises: 0007_rectification
Create Date: 2026-12-02 03:50:00
"""

import json

import sqlalchemy as sa
from alembic import op

from services.intake.config import dtn_hmac_key
from services.intake.referral_keys import ReferralKeys
from shared.config import Settings

revision = "0008_keyed_hashes"
down_revision = "0007_rectification"
branch_labels = None
depends_on = None

referrals = sa.table(
    "referrals",
    sa.column("id", sa.String),
    sa.column("org_id", sa.String),
    sa.column("external_reference", sa.String),
    sa.column("reference_keyed", sa.Boolean),
    sa.column("request_hash", sa.String),
    sa.column("pathway", sa.String),
    sa.column("body", sa.JSON),
    sa.column("erased_at", sa.DateTime),
)


def upgrade() -> None:
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reference_keyed", sa.Boolean(), nullable=False, server_default=sa.false()))
    keys = ReferralKeys(dtn_hmac_key(Settings.from_env("intake")))
    bind = op.get_bind()
    rows = bind.execute(sa.select(referrals).where(referrals.c.erased_at.is_(None))).mappings().all()
    for row in rows:
        body = row["body"] if isinstance(row["body"], dict) else json.loads(row["body"] or "{}")
        # Recorded without identifiers (domain.without_identifiers keeps no referrer): the DtN pathway, or
        # not_notified and never routed.
        anonymous = "referrer" not in body and row["pathway"] in ("duty_to_notify", "not_notified")
        changes: dict[str, object] = {"request_hash": keys.request_hash(row["request_hash"])}
        if anonymous:
            changes |= {
                "external_reference": keys.reference(row["org_id"], row["external_reference"]),
                "reference_keyed": True,
            }
        bind.execute(sa.update(referrals).where(referrals.c.id == row["id"]).values(**changes))


def downgrade() -> None:
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.drop_column("reference_keyed")
