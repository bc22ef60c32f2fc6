"""How to reach a conversation unprompted (Teams conversation references), for notices.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "conversation_references",
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("conversation", sa.String(512), nullable=False),
        sa.Column("thread", sa.String(256), nullable=False),
        sa.Column("reference", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "channel", "tenant", "conversation", "thread", name="pk_conversation_references"
        ),
    )


def downgrade() -> None:
    op.drop_table("conversation_references")
