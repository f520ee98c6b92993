"""Initial schema: the orders read model, its audit trail, the notification outbox, filings, archived documents.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _instant(name: str, *, nullable: bool = False) -> sa.Column:
    # store.tables.UtcDateTime stores this type; the decorator only normalises values in Python.
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("workflow_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("province", sa.String(length=32), nullable=False),
        sa.Column("filing_number", sa.String(length=64), nullable=False),
        sa.Column("entity_filing_number", sa.String(length=64), nullable=False),
        sa.Column("stage", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("waiting_on", sa.String(length=16), nullable=False),
        sa.Column("overdue", sa.Boolean(), nullable=False),
        _instant("placed_at"),
        _instant("updated_at"),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        _instant("review_due_at", nullable=True),
        sa.Column("notice_reference", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_orders")),
    )
    op.create_index("ix_orders_stage_status", "orders", ["stage", "status"])
    op.create_index("ix_orders_province", "orders", ["province"])
    op.create_index("ix_orders_kind", "orders", ["kind"])
    op.create_index("ix_orders_overdue", "orders", ["overdue"])
    op.create_index("ix_orders_filing_number", "orders", ["filing_number"])
    op.create_index("ix_orders_entity_filing_number", "orders", ["entity_filing_number"])
    op.create_index("ix_orders_placed_at", "orders", ["placed_at"])
    op.create_index("ix_orders_updated_at_order_id", "orders", ["updated_at", "order_id"])

    op.create_table(
        "order_events",
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        _instant("at"),
        sa.Column("stage", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=16), nullable=False),
        sa.Column("actor_name", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("order_id", "seq", name=op.f("pk_order_events")),
    )

    op.create_table(
        "outbox",
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("event_key", sa.String(length=128), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("provider_id", sa.String(length=255), nullable=True),
        _instant("created_at"),
        _instant("sent_at", nullable=True),
        sa.PrimaryKeyConstraint("order_id", "event_key", "channel", name=op.f("pk_outbox")),
    )

    op.create_table(
        "filings",
        sa.Column("entity_filing_number", sa.String(length=64), nullable=False),
        sa.Column("province", sa.String(length=32), nullable=False),
        sa.Column("record_json", sa.Text(), nullable=False),
        sa.Column("updated_by_order", sa.String(length=64), nullable=True),
        _instant("updated_at"),
        _instant("cancelled_at", nullable=True),
        sa.PrimaryKeyConstraint("entity_filing_number", name=op.f("pk_filings")),
    )

    op.create_table(
        "archived_documents",
        sa.Column("entity_filing_number", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("content_type", sa.String(length=128), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        _instant("approved_at"),
        sa.PrimaryKeyConstraint("entity_filing_number", "key", "order_id", name=op.f("pk_archived_documents")),
    )


def downgrade() -> None:
    op.drop_table("archived_documents")
    op.drop_table("filings")
    op.drop_table("outbox")
    op.drop_table("order_events")
    op.drop_index("ix_orders_updated_at_order_id", table_name="orders")
    op.drop_index("ix_orders_placed_at", table_name="orders")
    op.drop_index("ix_orders_entity_filing_number", table_name="orders")
    op.drop_index("ix_orders_filing_number", table_name="orders")
    op.drop_index("ix_orders_overdue", table_name="orders")
    op.drop_index("ix_orders_kind", table_name="orders")
    op.drop_index("ix_orders_province", table_name="orders")
    op.drop_index("ix_orders_stage_status", table_name="orders")
    op.drop_table("orders")
