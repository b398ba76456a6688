"""Apply or revert Alembic migrations programmatically (used by `capas up`, compose, tests)."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection

from core.db import get_engine
from core.settings import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def _config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["settings"] = settings
    return config


@contextmanager
def _migrating(settings: Settings) -> Iterator[Connection]:
    """One transaction for the migrations. On SQLite, foreign keys are not enforced while it
    lasts: Alembic's batch mode alters a table by copying it, dropping the old one and renaming
    the copy, and with enforcement on, that drop deletes every row that refers to the table (a
    job's events and metrics). SQLite's own procedure for such changes turns enforcement off
    around the transaction and checks the keys before it commits."""
    with get_engine(settings).connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:  # a no-op inside a transaction: before it begins
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        try:
            with connection.begin():
                yield connection
                broken = (connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                          if sqlite else [])
                if broken:
                    raise RuntimeError(f"the migration left rows whose foreign key points at "
                                       f"nothing (table, rowid, parent, key): {broken[:5]}")
        finally:
            if sqlite:  # the pooled connection goes back as every other one is
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()


def upgrade(settings: Settings, revision: str = "head") -> None:
    with _migrating(settings) as connection:
        config = _config(settings)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(settings: Settings, revision: str = "base") -> None:
    with _migrating(settings) as connection:
        config = _config(settings)
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
