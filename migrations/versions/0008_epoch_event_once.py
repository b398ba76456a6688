"""A job's event stream holds each epoch once: the epoch's number keys its event

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

events = sa.table("job_events", sa.column("id", sa.Integer), sa.column("job_id", sa.String),
                  sa.column("kind", sa.String), sa.column("data", sa.JSON),
                  sa.column("epoch", sa.Integer))


def upgrade() -> None:
    op.add_column("job_events", sa.Column("epoch", sa.Integer(), nullable=True))
    op.execute(events.update().where(events.c.kind == "epoch")
               .values(epoch=events.c.data["epoch"].as_integer()))
    # Epochs a resumed job trained again: keep the last event of each, the one with its
    # final values.
    newer = events.alias("newer")
    op.execute(events.delete().where(
        events.c.epoch.is_not(None),
        sa.exists().where(newer.c.job_id == events.c.job_id, newer.c.epoch == events.c.epoch,
                          newer.c.id > events.c.id)))
    op.create_index("uq_job_events_job_epoch", "job_events", ["job_id", "epoch"], unique=True)


# A batch copy on SQLite, which is safe here: no table refers to the job events.
def downgrade() -> None:
    op.drop_index("uq_job_events_job_epoch", table_name="job_events")
    with op.batch_alter_table("job_events") as batch:
        batch.drop_column("epoch")
