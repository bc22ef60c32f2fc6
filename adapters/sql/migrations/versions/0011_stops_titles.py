"""An inbox item remembers who stopped its answer, so that the worker answering it (or
one that claims it after a crash) ends it as stopped instead of answering on; and a
conversation keeps the title its first question gave it.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("inbox", sa.Column("stopped_by", sa.String(256), nullable=True))
    op.add_column("conversations", sa.Column("title", sa.String(200), nullable=True))


def downgrade() -> None:
    op.drop_column("conversations", "title")
    op.drop_column("inbox", "stopped_by")
