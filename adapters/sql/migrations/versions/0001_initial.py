"""Initial schema: conversations, turns, inbox, profiles.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Frozen copies of the types in adapters.sql.types: a migration must not change when the
# application's code does.
_big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_when = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("external_id", sa.String(512), nullable=False),
        sa.Column("thread_id", sa.String(256), nullable=False, server_default=""),
        sa.Column("owner", sa.String(256), nullable=True),
        sa.Column("created_at", _when, nullable=False),
        sa.Column("updated_at", _when, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_conversations"),
        sa.UniqueConstraint(
            "channel", "tenant", "external_id", "thread_id",
            name="uq_conversations_channel_tenant_external_id_thread_id",
        ),
    )
    op.create_index(
        "ix_conversations_channel_owner_updated_at",
        "conversations",
        ["channel", "owner", "updated_at"],
    )
    op.create_table(
        "turns",
        sa.Column("id", _big_id, autoincrement=True, nullable=False),
        sa.Column("conversation_id", sa.String(32), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("tool_calls", sa.JSON(), nullable=True),
        sa.Column("tool_call_id", sa.String(128), nullable=True),
        sa.Column("tokens", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("citations", sa.JSON(), nullable=True),
        sa.Column("inbox_item_id", _big_id, nullable=True),
        sa.Column("created_at", _when, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_turns"),
        sa.ForeignKeyConstraint(
            ["conversation_id"], ["conversations.id"],
            name="fk_turns_conversation_id_conversations", ondelete="CASCADE",
        ),
    )
    op.create_index("ix_turns_conversation_id_id", "turns", ["conversation_id", "id"])
    op.create_index("ix_turns_inbox_item_id", "turns", ["inbox_item_id"])
    op.create_table(
        "inbox",
        sa.Column("id", _big_id, autoincrement=True, nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("message_key", sa.String(512), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_until", _when, nullable=True),
        sa.Column("last_error", sa.String(256), nullable=True),
        sa.Column("created_at", _when, nullable=False),
        sa.Column("updated_at", _when, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_inbox"),
        sa.UniqueConstraint(
            "channel", "tenant", "message_key", name="uq_inbox_channel_tenant_message_key"
        ),
    )
    op.create_index("ix_inbox_status_lease_until", "inbox", ["status", "lease_until"])
    op.create_table(
        "profiles",
        sa.Column("id", sa.String(256), nullable=False),
        sa.Column("name", sa.String(256), nullable=True),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("title", sa.String(256), nullable=True),
        sa.Column("department", sa.String(256), nullable=True),
        sa.Column("time_zone", sa.String(64), nullable=True),
        sa.Column("preferences", sa.JSON(), nullable=False),
        sa.Column("updated_at", _when, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_profiles"),
    )


def downgrade() -> None:
    op.drop_table("profiles")
    op.drop_index("ix_inbox_status_lease_until", table_name="inbox")
    op.drop_table("inbox")
    op.drop_index("ix_turns_inbox_item_id", table_name="turns")
    op.drop_index("ix_turns_conversation_id_id", table_name="turns")
    op.drop_table("turns")
    op.drop_index(
        "ix_conversations_channel_owner_updated_at", table_name="conversations"
    )
    op.drop_table("conversations")
