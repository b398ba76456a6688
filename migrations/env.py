"""Alembic environment: the URL comes from Capas's settings object."""

from alembic import context

from core.db import get_engine
from core.models import Base
from core.settings import get_settings

config = context.config
target_metadata = Base.metadata


def run_migrations(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


if "connection" in config.attributes:  # called from core.migrate
    run_migrations(config.attributes["connection"])
else:  # the alembic command line
    with get_engine(get_settings()).begin() as connection:
        run_migrations(connection)
