"""The Alembic revisions build exactly the schema ``store/tables.py`` declares, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from store.db import create_engine, upgrade
from store.tables import FilingRow, metadata


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True, "compare_server_default": True})
    return list(compare_metadata(context, metadata))


async def test_migrations_to_head_produce_the_schema_of_the_metadata(database_url: str) -> None:
    await upgrade(database_url)
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(_diff) == []
    finally:
        await engine.dispose()


async def test_upgrade_twice_is_harmless_and_records_the_head_revision(database_url: str) -> None:
    await upgrade(database_url)
    await upgrade(database_url)
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            version = (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
            tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
    finally:
        await engine.dispose()
    assert version == "0002"
    assert {"orders", "order_events", "outbox", "filings", "archived_documents"} <= tables


async def test_concurrent_upgrades_from_several_processes_take_turns(database_url: str) -> None:
    # The worker and the API both upgrade at start; neither may fail because the other got there first.
    others = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            f"import asyncio; from store.db import upgrade; asyncio.run(upgrade({database_url!r}))",
        )
        for _ in range(2)
    ]
    await asyncio.gather(upgrade(database_url), upgrade(database_url))
    assert [await p.wait() for p in others] == [0, 0]
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(_diff) == []
    finally:
        await engine.dispose()


async def test_sqlite_engine_creates_the_folder_and_uses_wal(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'nested' / 'deeper' / 'app.db'}"
    await upgrade(url)
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            mode = (await connection.exec_driver_sql("PRAGMA journal_mode")).scalar_one()
            timeout = (await connection.exec_driver_sql("PRAGMA busy_timeout")).scalar_one()
    finally:
        await engine.dispose()
    assert (tmp_path / "nested" / "deeper" / "app.db").exists()
    assert mode == "wal"
    assert timeout > 0


async def test_instants_read_back_timezone_aware_in_utc(
    db_engine: AsyncEngine, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    beijing = timezone(timedelta(hours=8))
    written = datetime(2026, 3, 2, 9, 30, 15, 123456, tzinfo=beijing)
    async with db_sessions() as session, session.begin():
        session.add(
            FilingRow(
                entity_filing_number="京ICP备12345678号",
                province="beijing",
                record_json="{}",
                updated_at=written,
            )
        )
    async with db_sessions() as session:
        row = await session.get(FilingRow, "京ICP备12345678号")
    assert row is not None
    assert row.updated_at == written
    assert row.updated_at.tzinfo is not None
    assert row.updated_at.utcoffset() == timedelta(0)
    assert row.updated_at == datetime(2026, 3, 2, 1, 30, 15, 123456, tzinfo=UTC)
    assert row.cancelled_at is None


async def test_naive_datetimes_are_refused(db_sessions: async_sessionmaker[AsyncSession]) -> None:
    import pytest
    from sqlalchemy.exc import StatementError

    with pytest.raises(StatementError, match="naive datetime"):
        async with db_sessions() as session, session.begin():
            session.add(
                FilingRow(
                    entity_filing_number="京ICP备12345678号",
                    province="beijing",
                    record_json="{}",
                    updated_at=datetime(2026, 3, 2, 9, 30),
                )
            )
