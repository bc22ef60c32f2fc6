"""The schema as SQLAlchemy Core tables. Migrations create it; keep both in step
(`test_migrations_create_exactly_the_declared_schema` compares them)."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from adapters.sql.types import BigId, NullableJSON, UtcDateTime

# Deterministic constraint names, so later migrations can drop or alter them by name.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

conversations = Table(
    "conversations",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("channel", String(32), nullable=False),
    Column("tenant", String(128), nullable=False),
    Column("external_id", String(512), nullable=False),
    # '' means "no thread": NULLs are distinct in a unique constraint and would let
    # two rows exist for the same unthreaded conversation.
    Column("thread_id", String(256), nullable=False, server_default=""),
    Column("owner", String(256), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # Named after its first question (a model's summary, or the trimmed first line).
    Column("title", String(200), nullable=True),
    UniqueConstraint("channel", "tenant", "external_id", "thread_id"),
    Index(None, "channel", "owner", "updated_at"),
)

turns = Table(
    "turns",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "conversation_id",
        String(32),
        ForeignKey("conversations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("role", String(16), nullable=False),
    Column("content", Text, nullable=False),
    Column("tool_calls", NullableJSON, nullable=True),
    Column("tool_call_id", String(128), nullable=True),
    Column("tokens", Integer, nullable=False, server_default="0"),
    Column("citations", NullableJSON, nullable=True),
    Column("inbox_item_id", BigId, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    # "Last N turns" walks this index backwards: O(N) whatever the thread's length.
    Index(None, "conversation_id", "id"),
    Index(None, "inbox_item_id"),
)

inbox = Table(
    "inbox",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("channel", String(32), nullable=False),
    Column("tenant", String(128), nullable=False),
    Column("message_key", String(512), nullable=False),
    Column("payload", NullableJSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", UtcDateTime, nullable=True),
    Column("last_error", String(256), nullable=True),
    # The platform's id of the delivery first recorded, where it differs from the message
    # id (Slack's event_id): only a retry of that delivery re-queues a failed item.
    Column("delivery_key", String(256), nullable=True),
    # The platform's id of the message showing the answer (a Slack stream's ts), noted as
    # soon as it exists: a retry after a crash finishes that message.
    Column("reply_id", String(256), nullable=True),
    # Who stopped the answer (a sender id): the worker ends it as stopped, never retried.
    Column("stopped_by", String(256), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("channel", "tenant", "message_key"),
    Index(None, "status", "lease_until"),
)

profiles = Table(
    "profiles",
    metadata,
    Column("id", String(256), primary_key=True),
    Column("name", String(256), nullable=True),
    Column("email", String(320), nullable=True),
    Column("title", String(256), nullable=True),
    Column("department", String(256), nullable=True),
    Column("time_zone", String(64), nullable=True),
    Column("preferences", NullableJSON, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# Platform delivery ids (Slack event_id) seen recently: retries are dropped before any work.
deliveries = Table(
    "deliveries",
    metadata,
    Column("channel", String(32), primary_key=True),
    Column("key", String(256), primary_key=True),
    Column("received_at", UtcDateTime, nullable=False),
    Index(None, "received_at"),
)

feedback = Table(
    "feedback",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("turn_id", BigId, ForeignKey("turns.id", ondelete="CASCADE"), nullable=False),
    Column("rater", String(256), nullable=False),
    Column("rating", String(8), nullable=False),
    Column("comment", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # One rating per person and answer: clicking again changes it.
    UniqueConstraint("turn_id", "rater"),
)

# A platform's id of a message the bot sent → the answer (turn) it carried, for platforms
# whose feedback names the message, not the answer (Teams' `message/submitAction`).
sent_messages = Table(
    "sent_messages",
    metadata,
    Column("channel", String(32), primary_key=True),
    Column("tenant", String(128), primary_key=True),
    Column("conversation", String(512), primary_key=True),
    Column("message_id", String(256), primary_key=True),
    Column("turn_id", BigId, ForeignKey("turns.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

# How to reach a conversation on the bot's own initiative (a Teams conversation
# reference: service URL, ids), for notices such as a ticket's status change.
conversation_references = Table(
    "conversation_references",
    metadata,
    Column("channel", String(32), primary_key=True),
    Column("tenant", String(128), primary_key=True),
    Column("conversation", String(512), primary_key=True),
    Column("thread", String(256), primary_key=True),
    Column("reference", NullableJSON, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# Support tickets. The number shown (TCK-1042) is derived from `id`, which the database
# assigns: unique however many processes create tickets at once.
tickets = Table(
    "tickets",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("title", String(200), nullable=False),
    Column("description", Text, nullable=False),
    Column("priority", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("requester", String(256), nullable=False),
    Column("requester_name", String(256), nullable=True),
    Column("origin_channel", String(32), nullable=True),
    Column("origin_tenant", String(128), nullable=True),
    Column("origin_conversation", String(512), nullable=True),
    Column("origin_thread", String(256), nullable=True),
    Column("origin_link", Text, nullable=True),
    Column("assignee", String(256), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index(None, "requester", "updated_at"),
    Index(None, "status", "updated_at"),
)

ticket_comments = Table(
    "ticket_comments",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("ticket_id", BigId, ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False),
    Column("author", String(256), nullable=False),
    Column("author_name", String(256), nullable=True),
    Column("text", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Index(None, "ticket_id", "id"),
)

# API keys made with `switchboard apikey create`: only each key's SHA-256 is kept
# (`core/apikeys.py` says why not a slow hash), looked up by index on every request.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("user_name", String(256), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("key_hash", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=True),
    Column("revoked_at", UtcDateTime, nullable=True),
    UniqueConstraint("key_hash"),
)

# Groups (`switchboard groups`): a member is a verified email or a channel-scoped id, so
# one group covers a person in Slack and in Teams. Looked up by member when a turn begins.
group_members = Table(
    "group_members",
    metadata,
    Column("group_name", String(128), primary_key=True),
    Column("member", String(256), primary_key=True),
    Column("added_at", UtcDateTime, nullable=False),
    Index(None, "member"),
)

# Sources kept in sync (`switchboard source`, SWITCHBOARD_SOURCES): a folder re-ingested
# every `interval_seconds` by one owning process at a time (the lease), and its last run.
sources = Table(
    "sources",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("origin", String(8), nullable=False),  # "cli", or "env": SWITCHBOARD_SOURCES
    Column("path", String(1024), nullable=False),
    Column("interval_seconds", Integer, nullable=False),
    Column("access", NullableJSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("next_run_at", UtcDateTime, nullable=False),
    Column("lease_owner", String(128), nullable=True),
    Column("lease_until", UtcDateTime, nullable=True),
    Column("last_started_at", UtcDateTime, nullable=True),
    Column("last_finished_at", UtcDateTime, nullable=True),
    Column("last_outcome", String(8), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("last_counts", NullableJSON, nullable=True),
    UniqueConstraint("origin", "path"),
    Index(None, "next_run_at"),
)

# Rate-limit counters (the `limits` library's fixed windows), shared by every process on
# the database. `expires_at` is epoch seconds, as the library reckons.
rate_limits = Table(
    "rate_limits",
    metadata,
    Column("key", String(512), primary_key=True),
    Column("count", Integer, nullable=False),
    Column("expires_at", Float, nullable=False),
    Index(None, "expires_at"),
)

# Slack installations (multi-workspace OAuth), in the shape slack_sdk's
# AsyncSQLAlchemyInstallationStore / AsyncSQLAlchemyOAuthStateStore read and write
# (`test_slack_tables_match_slack_sdk` keeps them in step with the library).
slack_installations = Table(
    "slack_installations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("client_id", String(32), nullable=False),
    Column("app_id", String(32), nullable=False),
    Column("enterprise_id", String(32)),
    Column("enterprise_name", String(200)),
    Column("enterprise_url", String(200)),
    Column("team_id", String(32)),
    Column("team_name", String(200)),
    Column("bot_token", String(200)),
    Column("bot_id", String(32)),
    Column("bot_user_id", String(32)),
    Column("bot_scopes", String(1000)),
    Column("bot_refresh_token", String(200)),
    Column("bot_token_expires_at", DateTime),
    Column("user_id", String(32), nullable=False),
    Column("user_token", String(200)),
    Column("user_scopes", String(1000)),
    Column("user_refresh_token", String(200)),
    Column("user_token_expires_at", DateTime),
    Column("incoming_webhook_url", String(200)),
    Column("incoming_webhook_channel", String(200)),
    Column("incoming_webhook_channel_id", String(200)),
    Column("incoming_webhook_configuration_url", String(200)),
    Column("is_enterprise_install", Boolean, nullable=False),
    Column("token_type", String(32)),
    Column("installed_at", DateTime, nullable=False),
    Index(
        "slack_installations_idx",
        "client_id", "enterprise_id", "team_id", "user_id", "installed_at",
    ),
)

slack_bots = Table(
    "slack_bots",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("client_id", String(32), nullable=False),
    Column("app_id", String(32), nullable=False),
    Column("enterprise_id", String(32)),
    Column("enterprise_name", String(200)),
    Column("team_id", String(32)),
    Column("team_name", String(200)),
    Column("bot_token", String(200)),
    Column("bot_id", String(32)),
    Column("bot_user_id", String(32)),
    Column("bot_scopes", String(1000)),
    Column("bot_refresh_token", String(200)),
    Column("bot_token_expires_at", DateTime),
    Column("is_enterprise_install", Boolean, nullable=False),
    Column("installed_at", DateTime, nullable=False),
    Index("slack_bots_idx", "client_id", "enterprise_id", "team_id", "installed_at"),
)

slack_oauth_states = Table(
    "slack_oauth_states",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("state", String(200), nullable=False),
    Column("expire_at", DateTime, nullable=False),
)
