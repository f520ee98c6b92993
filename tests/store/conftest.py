"""The store's tests run on SQLite and PostgreSQL: the database fixtures live in ``tests/fixtures_db.py``."""

from tests.fixtures_db import (  # noqa: F401  (fixtures, found by pytest by name)
    database_url,
    db_engine,
    db_sessions,
    postgres_database_url,
    sqlite_database_url,
)
