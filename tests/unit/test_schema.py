"""The migrations build exactly the schema the ORM models declare."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from core.db import get_engine
from core.models import Base


def test_migrations_match_the_models(embedded_settings):
    with get_engine(embedded_settings).connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
