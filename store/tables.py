"""The SQL tables: the read model of orders, their audit trail, the notification outbox and the filings on record.

Portable between SQLite and PostgreSQL: enums are stored as their string values (no database enum types), JSON as
text, and every instant as a timezone-aware UTC datetime (see :class:`UtcDateTime`). The Alembic revisions in
``store/migrations`` create exactly this schema; a test compares the two.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import BigInteger, Boolean, DateTime, Dialect, Index, Integer, MetaData, String, Table, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Stable constraint names, so migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware instant, always handed back in UTC.

    PostgreSQL stores ``timestamptz``. SQLite has no time zones: values are normalised to UTC before they are
    written (so text comparison orders them correctly) and get ``tzinfo=UTC`` back when read. A naive datetime
    is refused rather than guessed at.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: icpflow stores timezone-aware instants only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class OutboxStatus(StrEnum):
    PENDING = "pending"  # claimed, not (yet) accepted by the provider: a retry sends it
    SENT = "sent"  # accepted by the provider: never sent again
    FAILED = "failed"  # refused permanently (e.g. an invalid number): never retried


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: dict[Any, Any] = {datetime: UtcDateTime()}


class OrderRow(Base):
    """The read model: one row per order, the latest transition wins (by ``last_seq``)."""

    __tablename__ = "orders"

    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    workflow_id: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    province: Mapped[str] = mapped_column(String(32))
    filing_number: Mapped[str] = mapped_column(String(64))
    entity_filing_number: Mapped[str] = mapped_column(String(64))
    stage: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    waiting_on: Mapped[str] = mapped_column(String(16))
    overdue: Mapped[bool] = mapped_column(Boolean, default=False)
    placed_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    last_seq: Mapped[int] = mapped_column(Integer)
    review_due_at: Mapped[datetime | None]
    notice_reference: Mapped[str | None] = mapped_column(String(64))

    # Each list filter with the list's order (newest placed first), and every column the counts group by (so
    # counting reads only that index): see store/migrations/versions/0002_list_and_count_indexes.py.
    __table_args__ = (
        Index("ix_orders_stage_placed_at", "stage", "placed_at"),
        Index("ix_orders_status_placed_at", "status", "placed_at"),
        Index("ix_orders_province_placed_at", "province", "placed_at"),
        Index("ix_orders_kind_placed_at", "kind", "placed_at"),
        Index("ix_orders_overdue_placed_at", "overdue", "placed_at"),
        Index("ix_orders_counts", "stage", "status", "province", "kind", "overdue"),
        Index("ix_orders_filing_number", "filing_number"),
        Index("ix_orders_entity_filing_number", "entity_filing_number"),
        Index("ix_orders_placed_at", "placed_at"),
        Index("ix_orders_updated_at_order_id", "updated_at", "order_id"),
    )


class OrderEventRow(Base):
    """The audit trail: one row per transition, append-only, keyed by the workflow's sequence number."""

    __tablename__ = "order_events"

    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime]
    stage: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(16))
    actor_name: Mapped[str] = mapped_column(String(64), default="")
    reason: Mapped[str] = mapped_column(Text, default="")


class OutboxRow(Base):
    """One notification on one channel: sent at most once per ``(order_id, event_key, channel)``."""

    __tablename__ = "outbox"

    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_key: Mapped[str] = mapped_column(String(128), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    provider_id: Mapped[str | None] = mapped_column(String(255))  # SMTP Message-ID or Twilio message SID
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


class FilingRow(Base):
    """The provider's filing system: the record on file per filing entity, as updated by approved orders."""

    __tablename__ = "filings"

    entity_filing_number: Mapped[str] = mapped_column(String(64), primary_key=True)
    province: Mapped[str] = mapped_column(String(32))
    record_json: Mapped[str] = mapped_column(Text)  # models.order.FilingRecord as JSON
    updated_by_order: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime]
    cancelled_at: Mapped[datetime | None]


class ArchivedDocumentRow(Base):
    """A verified document of an approved order, kept so later orders of the same filing may reuse it."""

    __tablename__ = "archived_documents"

    entity_filing_number: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    uri: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(128))
    filename: Mapped[str] = mapped_column(String(255), default="")
    approved_at: Mapped[datetime]


metadata = Base.metadata
# The Core tables, for statements the ORM does not express (upserts). Declarative types them loosely.
orders = cast(Table, OrderRow.__table__)
order_events = cast(Table, OrderEventRow.__table__)
outbox = cast(Table, OutboxRow.__table__)
filings = cast(Table, FilingRow.__table__)
archived_documents = cast(Table, ArchivedDocumentRow.__table__)
