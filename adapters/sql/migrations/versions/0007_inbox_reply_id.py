"""The inbox row keeps the platform's id of the message showing its answer (a Slack
stream's ts), recorded as soon as that message exists: whoever answers the item after a
crash finishes that message instead of leaving it cut off beside a second one.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("inbox", sa.Column("reply_id", sa.String(256), nullable=True))


def downgrade() -> None:
    op.drop_column("inbox", "reply_id")
