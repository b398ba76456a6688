"""An alias can be removed: its history records the removal as a move to no version

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


# A batch copy on SQLite, which is safe here: no table refers to the alias history.
def upgrade() -> None:
    with op.batch_alter_table("model_alias_events") as batch:
        batch.alter_column("version", existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM model_alias_events WHERE version IS NULL")
    with op.batch_alter_table("model_alias_events") as batch:
        batch.alter_column("version", existing_type=sa.Integer(), nullable=False)
