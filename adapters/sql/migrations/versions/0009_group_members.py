"""Groups kept in SQL (`switchboard groups`): who belongs to which named group.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "group_members",
        sa.Column("group_name", sa.String(128), nullable=False),
        sa.Column("member", sa.String(256), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("group_name", "member", name="pk_group_members"),
    )
    op.create_index("ix_group_members_member", "group_members", ["member"])


def downgrade() -> None:
    op.drop_table("group_members")
