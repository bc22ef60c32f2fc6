"""The inbox row keeps the platform's id of the delivery first recorded (Slack's event_id),
so `accept` tells a retry of that delivery (which re-queues a failed item) from another
copy of the message (which does not) in the transaction that records it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("inbox", sa.Column("delivery_key", sa.String(256), nullable=True))


def downgrade() -> None:
    op.drop_column("inbox", "delivery_key")
