"""Indexes for the dashboard at scale: each list filter with the list's order, and one covering index for counts.

A list is newest placed first with at most one filter on a column of few values (stage, status, province, kind,
overdue). With an index on the filter column alone the database reads every matching row and sorts them (tens of
thousands for a busy province or stage at 100,000 orders); with ``(column, placed_at)`` it reads the first page
straight off the index, and a cursor's ``placed_at <= …`` starts the scan where the page begins. These replace the
single-column indexes on province, kind and overdue, which they cover.

``ix_orders_counts`` (stage, status, province, kind, overdue) holds every column the dashboard's counts group by,
so counting reads the index, never the table; it also serves what ``ix_orders_stage_status`` served (its prefix).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REPLACED = {
    "ix_orders_stage_status": ["stage", "status"],
    "ix_orders_province": ["province"],
    "ix_orders_kind": ["kind"],
    "ix_orders_overdue": ["overdue"],
}
ADDED = {
    "ix_orders_stage_placed_at": ["stage", "placed_at"],
    "ix_orders_status_placed_at": ["status", "placed_at"],
    "ix_orders_province_placed_at": ["province", "placed_at"],
    "ix_orders_kind_placed_at": ["kind", "placed_at"],
    "ix_orders_overdue_placed_at": ["overdue", "placed_at"],
    "ix_orders_counts": ["stage", "status", "province", "kind", "overdue"],
}


def upgrade() -> None:
    for name, columns in ADDED.items():
        op.create_index(name, "orders", columns)
    for name in REPLACED:
        op.drop_index(name, table_name="orders")


def downgrade() -> None:
    for name, columns in REPLACED.items():
        op.create_index(name, "orders", columns)
    for name in ADDED:
        op.drop_index(name, table_name="orders")
