"""Alembic environment: async engines, the URL given programmatically (``store.db.alembic_config``), no ini file."""

from __future__ import annotations

import asyncio
from typing import Literal

from alembic import context
from sqlalchemy import Connection

from store.db import create_engine
from store.tables import UtcDateTime, metadata

config = context.config


def _url() -> str:
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        from models.settings import get_settings

        url = get_settings().database_url
    return str(url)


def _render_item(type_: str, obj: object, autogen_context: object) -> str | Literal[False]:
    # Revisions are frozen history: spell UtcDateTime as the plain column type it stores, never import store.tables.
    if type_ == "type" and isinstance(obj, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=metadata,
        compare_type=True,
        render_item=_render_item,
        # SQLite alters tables by copying them; batch mode makes later revisions portable.
        render_as_batch=True,
        **kwargs,
    )


def run_on(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


async def run_async() -> None:
    engine = create_engine(_url())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_on)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    _configure(url=_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()
elif (shared := config.attributes.get("connection")) is not None:
    run_on(shared)
else:
    asyncio.run(run_async())
