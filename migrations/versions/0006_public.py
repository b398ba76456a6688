"""Datasets and models their owner marked public, readable by every member

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TABLES = ("datasets", "models")


# Plain ALTER TABLE, never a batch copy: on SQLite a copy drops the old table, and dropping
# `models` would delete every version through its foreign key. A constant default lets SQLite
# add a NOT NULL column in place.


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column("public", sa.Boolean(), nullable=False,
                                       server_default=sa.text("false")))


def downgrade() -> None:
    for table in TABLES:
        op.drop_column(table, "public")
