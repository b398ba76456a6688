"""Alembic migrations up and down on the real PostgreSQL."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from core.migrate import downgrade, upgrade
from core.models import Base
from core.settings import Settings


def test_migrations_go_down_and_up_and_match_the_models(postgres_url, tmp_path):
    import uuid

    name = f"capas_mig_{uuid.uuid4().hex[:8]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = postgres_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        settings = Settings(data_dir=tmp_path, database_url=url, broker_url="redis://x")
        upgrade(settings)
        engine = create_engine(url)
        tables = set(inspect(engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
        with engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection),
                                    Base.metadata) == []
        downgrade(settings, "base")
        assert set(inspect(engine).get_table_names()) == {"alembic_version"}
        upgrade(settings)
        assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
        engine.dispose()
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
