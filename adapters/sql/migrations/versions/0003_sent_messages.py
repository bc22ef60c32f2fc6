"""Teams: which answer each sent message carried, so feedback on a message finds its turn.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "sent_messages",
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("conversation", sa.String(512), nullable=False),
        sa.Column("message_id", sa.String(256), nullable=False),
        sa.Column("turn_id", _big_id, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["turn_id"], ["turns.id"], name="fk_sent_messages_turn_id_turns", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint(
            "channel", "tenant", "conversation", "message_id", name="pk_sent_messages"
        ),
    )


def downgrade() -> None:
    op.drop_table("sent_messages")
