"""Support tickets and their comments.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_when = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tickets",
        sa.Column("id", _big_id, autoincrement=True, nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("priority", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requester", sa.String(256), nullable=False),
        sa.Column("requester_name", sa.String(256), nullable=True),
        sa.Column("origin_channel", sa.String(32), nullable=True),
        sa.Column("origin_tenant", sa.String(128), nullable=True),
        sa.Column("origin_conversation", sa.String(512), nullable=True),
        sa.Column("origin_thread", sa.String(256), nullable=True),
        sa.Column("origin_link", sa.Text(), nullable=True),
        sa.Column("assignee", sa.String(256), nullable=True),
        sa.Column("created_at", _when, nullable=False),
        sa.Column("updated_at", _when, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tickets"),
    )
    op.create_index("ix_tickets_requester_updated_at", "tickets", ["requester", "updated_at"])
    op.create_index("ix_tickets_status_updated_at", "tickets", ["status", "updated_at"])
    op.create_table(
        "ticket_comments",
        sa.Column("id", _big_id, autoincrement=True, nullable=False),
        sa.Column("ticket_id", _big_id, nullable=False),
        sa.Column("author", sa.String(256), nullable=False),
        sa.Column("author_name", sa.String(256), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", _when, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ticket_comments"),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name="fk_ticket_comments_ticket_id_tickets",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_ticket_comments_ticket_id_id", "ticket_comments", ["ticket_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_ticket_comments_ticket_id_id", table_name="ticket_comments")
    op.drop_table("ticket_comments")
    op.drop_index("ix_tickets_status_updated_at", table_name="tickets")
    op.drop_index("ix_tickets_requester_updated_at", table_name="tickets")
    op.drop_table("tickets")
