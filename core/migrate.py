"""Apply or revert Alembic migrations programmatically (used by `capas up`, compose, tests)."""

from pathlib import Path

from alembic import command
from alembic.config import Config

from core.db import get_engine
from core.settings import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def _config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["settings"] = settings
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    with get_engine(settings).begin() as connection:
        config = _config(settings)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(settings: Settings, revision: str = "base") -> None:
    with get_engine(settings).begin() as connection:
        config = _config(settings)
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
