"""registry: model aliases, their history, per-model batching

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import context, op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('model_alias_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('alias', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('previous_version', sa.Integer(), nullable=True),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('model_alias_events', schema=None) as batch_op:
        batch_op.create_index('ix_model_alias_events_model_alias', ['model_id', 'alias'],
                              unique=False)

    op.create_table('model_aliases',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('alias', sa.String(length=64), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['version_id'], ['model_versions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('model_id', 'alias', name='uq_model_aliases')
    )
    with op.batch_alter_table('model_aliases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_model_aliases_version_id'), ['version_id'],
                              unique=False)

    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.add_column(sa.Column('max_batch_size', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('max_delay_ms', sa.Double(), nullable=True))

    _complete_cards()


def _complete_cards() -> None:
    """Give versions published before this revision what their model card now shows.

    The spec comes from the job, the output shape from analysing it, the parity from the
    version's own column with the tolerance this service runs with. Downgrading leaves the
    added keys in place: older code ignores them.
    """
    from core.settings import get_settings
    from ml.spec import JobSpec, analyze

    settings = context.config.attributes.get("settings") or get_settings()
    versions = sa.table('model_versions', sa.column('id', sa.Integer),
                        sa.column('job_id', sa.String), sa.column('card', sa.JSON),
                        sa.column('onnx_max_abs_diff', sa.Double))
    jobs = sa.table('jobs', sa.column('id', sa.String), sa.column('spec', sa.JSON))
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(versions.c.id, versions.c.card, versions.c.onnx_max_abs_diff, jobs.c.spec)
        .join(jobs, jobs.c.id == versions.c.job_id)).all()
    for version_id, card, max_abs_diff, spec in rows:
        if "export_parity" in card:
            continue
        model = JobSpec.model_validate(spec).model
        card = {key: value for key, value in card.items() if key != "onnx_max_abs_diff"}
        card.update(spec=spec, output={"shape": analyze(model).output_shape, "dtype": "float32"},
                    export_parity={"max_abs_diff": max_abs_diff,
                                   "tolerance": settings.parity_tolerance})
        connection.execute(versions.update().where(versions.c.id == version_id)
                           .values(card=card))


def downgrade() -> None:
    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.drop_column('max_delay_ms')
        batch_op.drop_column('max_batch_size')

    with op.batch_alter_table('model_aliases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_model_aliases_version_id'))

    op.drop_table('model_aliases')
    with op.batch_alter_table('model_alias_events', schema=None) as batch_op:
        batch_op.drop_index('ix_model_alias_events_model_alias')

    op.drop_table('model_alias_events')