"""Studies: many trainings as one experiment, whose trials are jobs that name their study

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "studies",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("owner_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("enumerated", sa.Boolean(), nullable=False),
        sa.Column("trials_started", sa.Integer(), nullable=False),
        sa.Column("invalid_trials", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_studies_owner_id", "studies", ["owner_id"])
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("study_id", sa.String(36), nullable=True))
        batch.add_column(sa.Column("trial_number", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("trial_params", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("pruned_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("publish", sa.Boolean(), nullable=False,
                                   server_default=sa.true()))
        batch.add_column(sa.Column("unpublished", sa.JSON(), nullable=True))
        batch.create_foreign_key("fk_jobs_study_id", "studies", ["study_id"], ["id"],
                                 ondelete="CASCADE")
        batch.create_unique_constraint("uq_jobs_study_trial", ["study_id", "trial_number"])
        batch.create_index("ix_jobs_study_id", ["study_id"])


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_study_id")
        batch.drop_constraint("uq_jobs_study_trial", type_="unique")
        batch.drop_constraint("fk_jobs_study_id", type_="foreignkey")
        for column in ("unpublished", "publish", "pruned_reason", "trial_params",
                       "trial_number", "study_id"):
            batch.drop_column(column)
    op.drop_index("ix_studies_owner_id", table_name="studies")
    op.drop_table("studies")
