"""Alembic migrations of the app database; run them with ``store.db.upgrade`` or ``icpflow db upgrade``."""
