"""datasets: jobs record the dataset hash and split; lookups by dataset and by content

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dataset_sha256', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('split', sa.JSON(), nullable=True))
        batch_op.create_index(batch_op.f('ix_jobs_dataset'), ['dataset'], unique=False)

    with op.batch_alter_table('datasets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_datasets_sha256'), ['sha256'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('datasets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_datasets_sha256'))

    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_jobs_dataset'))
        batch_op.drop_column('split')
        batch_op.drop_column('dataset_sha256')
