"""Database fixtures, as a pytest plugin (listed in the root conftest's ``pytest_plugins``).

- ``database_url`` — an empty database, parametrised: every test using it runs twice, on a SQLite file and on a
  PostgreSQL database of its own (created for the test and dropped after it). Test ids end ``[sqlite]`` /
  ``[postgresql]``; the PostgreSQL case carries the ``postgres`` marker.
- ``db_engine`` — an ``AsyncEngine`` on ``database_url``, migrated to the latest revision.
- ``db_sessions`` — an ``async_sessionmaker`` on ``db_engine`` (what activities and queries take).
- ``sqlite_database_url`` / ``postgres_database_url`` — one backend only, when a test needs exactly one.
- ``temporary_postgres_database()`` — the context manager behind ``postgres_database_url``, for fixtures of
  other scopes.

PostgreSQL is the machine's server on 127.0.0.1:5432 (override the maintenance URL with
``ICPFLOW_TEST_POSTGRES_URL``). When it is unreachable the PostgreSQL cases fail rather than skip: CI must
exercise both backends.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from store.db import create_engine, session_factory, upgrade

POSTGRES_ADMIN_URL = os.environ.get("ICPFLOW_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
DATABASE_PREFIX = "icpflow_test_"


@asynccontextmanager
async def temporary_postgres_database(admin_url: str = POSTGRES_ADMIN_URL) -> AsyncIterator[str]:
    """Create a database named ``icpflow_test_<random>``, yield its URL, drop it (even if connections remain)."""
    name = DATABASE_PREFIX + secrets.token_hex(6)
    admin = create_async_engine(
        admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool, connect_args={"timeout": 5}
    )
    try:
        try:
            async with admin.connect() as connection:
                await connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        except (OSError, TimeoutError, DBAPIError) as e:
            pytest.fail(
                f"PostgreSQL at {make_url(admin_url).render_as_string(hide_password=True)} is unreachable ({e}); "
                "the PostgreSQL cases need it (set ICPFLOW_TEST_POSTGRES_URL to point elsewhere)",
                pytrace=False,
            )
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            async with admin.connect() as connection:
                await connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.dispose()


@pytest.fixture
def sqlite_database_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'data' / 'icpflow.db'}"


@pytest_asyncio.fixture
async def postgres_database_url() -> AsyncIterator[str]:
    async with temporary_postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    fixture = {"sqlite": "sqlite_database_url", "postgresql": "postgres_database_url"}[request.param]
    url: str = request.getfixturevalue(fixture)
    return url


@pytest_asyncio.fixture
async def db_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    await upgrade(database_url)
    engine = create_engine(database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def db_sessions(db_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(db_engine)
