"""Repositories: the only place that builds SQL queries."""

from collections.abc import Callable
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def dialect_insert(session: Session) -> Callable[[Any], postgresql.Insert | sqlite.Insert]:
    """The `INSERT` of the session's database: SQLAlchemy spells `ON CONFLICT` per dialect."""
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
