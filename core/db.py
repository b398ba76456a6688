"""Database engine and session factory for SQLite (embedded) or PostgreSQL (cluster)."""

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from core.settings import Settings


def _sqlite_pragmas(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    # API and worker write at once: WAL lets readers run beside a writer, and the busy
    # timeout makes a second writer wait instead of failing with "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


_known_urls: set[str] = set()


@lru_cache(maxsize=8)
def _engine_for(url: str) -> Engine:
    _known_urls.add(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


def get_engine(settings: Settings) -> Engine:
    if settings.database_url is None:
        settings.ensure_dirs()
    return _engine_for(settings.sqlalchemy_url)


@lru_cache(maxsize=8)
def _session_factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(bind=_engine_for(url), expire_on_commit=False)


def session_factory(settings: Settings) -> sessionmaker[Session]:
    get_engine(settings)
    return _session_factory(settings.sqlalchemy_url)


def reset_after_fork() -> None:
    """In a forked child: drop the parent's pooled connections without closing them."""
    for url in list(_known_urls):
        _engine_for(url).dispose(close=False)


@contextmanager
def session_scope(settings: Settings) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = session_factory(settings)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
