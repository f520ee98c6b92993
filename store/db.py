"""Engines, sessions and schema migrations for the app database (SQLite by default, PostgreSQL by URL)."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# How long a SQLite writer waits for another one before "database is locked" (milliseconds).
SQLITE_BUSY_TIMEOUT_MS = 10_000
# How long opening a PostgreSQL connection may take before it counts as the database being unreachable (seconds);
# asyncpg's own default is a minute, as long as an activity's whole attempt.
PG_CONNECT_TIMEOUT_SECONDS = 10.0


class DatabaseUnavailable(Exception):
    """The app database could not be reached, or dropped the connection: an outage, worth retrying later.

    Activities raise it (Temporal retries it under its class name), so an order waiting on the database says so
    in plain words instead of a driver's socket error."""


def is_unavailable(error: BaseException) -> bool:
    """True when ``error`` means the database is down or unreachable (not that the statement was wrong)."""
    if isinstance(error, OSError | TimeoutError):
        return True  # connection refused, reset, DNS, connect timeout (asyncpg raises these unwrapped)
    if isinstance(error, DBAPIError):
        return error.connection_invalidated or isinstance(error, OperationalError | InterfaceError)
    try:
        import asyncpg
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        return False
    return isinstance(
        error,
        asyncpg.exceptions.PostgresConnectionError
        | asyncpg.exceptions.CannotConnectNowError
        | asyncpg.exceptions.AdminShutdownError
        | asyncpg.exceptions.InterfaceError,
    )


@asynccontextmanager
async def reaching(what: str) -> AsyncIterator[None]:
    """Run the block; an error meaning the database is unreachable becomes ``DatabaseUnavailable`` naming
    ``what`` was being done. Every other error passes unchanged."""
    try:
        yield
    except DatabaseUnavailable:
        raise
    except Exception as e:
        if is_unavailable(e):
            raise DatabaseUnavailable(
                f"could not {what}: the app database is unreachable ({type(e).__name__}: {e})"
            ) from None  # the message names the cause; the workflow shows an error's innermost cause
        raise


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine for ``url`` (``sqlite+aiosqlite:///path`` or ``postgresql+asyncpg://…``).

    For a SQLite file the parent folder is created, and every connection runs in WAL mode with a busy timeout,
    so the worker and the API can share one file. Extra keyword arguments go to ``create_async_engine``.
    """
    parsed = make_url(url)
    is_sqlite = parsed.get_backend_name() == "sqlite"
    if is_sqlite and parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    if not is_sqlite:
        kwargs.setdefault("pool_pre_ping", True)
        if parsed.get_driver_name() == "asyncpg":
            kwargs["connect_args"] = {"timeout": PG_CONNECT_TIMEOUT_SECONDS, **kwargs.get("connect_args", {})}
    engine = create_async_engine(parsed, **kwargs)
    if is_sqlite:
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions whose objects stay readable after commit (activities return them after the transaction)."""
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> Config:
    """An Alembic configuration for ``url`` without any ``alembic.ini``: the scripts ship inside this package.

    Also the way to author a revision: ``command.revision(alembic_config(url), autogenerate=True, message=…)``.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Through attributes, not the ini option: a URL may hold '%' that ConfigParser would try to interpolate.
    config.attributes["url"] = url
    return config


async def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` to ``revision`` (the latest by default). Safe to run repeatedly, and from
    several processes at once (the worker and the API both upgrade at start): they take turns.
    """
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        _begin_immediate(engine)
    try:
        # Alembic keeps the running migration in module globals: one upgrade at a time per process.
        async with _upgrade_lock(), engine.begin() as connection:
            await connection.run_sync(_upgrade, alembic_config(url), revision)
    finally:
        await engine.dispose()


# One lock per event loop: an asyncio.Lock must not be shared between loops.
_UPGRADE_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()

# Any constant will do, as long as every icpflow process uses the same one.
_PG_MIGRATION_LOCK_KEY = 0x1C9F10


def _upgrade_lock() -> asyncio.Lock:
    return _UPGRADE_LOCKS.setdefault(asyncio.get_running_loop(), asyncio.Lock())


def _begin_immediate(engine: AsyncEngine) -> None:
    """Make every transaction on ``engine`` take SQLite's write lock at BEGIN, so a second process's upgrade waits
    (busy timeout) and then sees the first one's work instead of creating the same tables again."""

    def no_driver_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver's own BEGIN would come too late

    def begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    event.listen(engine.sync_engine, "connect", no_driver_transactions)
    event.listen(engine.sync_engine, "begin", begin)


def _upgrade(connection: Connection, config: Config, revision: str) -> None:
    if connection.dialect.name == "postgresql":
        # Held until this transaction ends: a concurrent upgrade in another process waits here.
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK_KEY})")
    # env.py runs the migrations on this connection instead of opening its own (Alembic's connection sharing).
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def upsert_insert(session: AsyncSession, table: Table) -> postgresql.Insert | sqlite.Insert:
    """An ``INSERT`` for ``table`` in the session's dialect, with ``on_conflict_do_update`` / ``_do_nothing``.

    Both supported backends spell upserts ``INSERT … ON CONFLICT``; only the SQLAlchemy construct differs.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"icpflow's store supports SQLite and PostgreSQL, not {dialect}")
