"""Read helpers over the read model: one order, lists for dashboards with keyset pagination, timelines, counts.

Every helper takes an ``AsyncSession`` and returns pydantic models defined here (or ``models.state.Transition``),
never ORM rows, so callers (the client facade, the API, the CLI) are independent of the tables.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import Counter
from datetime import datetime
from typing import TypedDict, Unpack

from pydantic import ConfigDict, Field
from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.order import Frozen, OrderKind, Province
from models.order import entity_filing_number as entity_number_of
from models.stages import TERMINAL_STAGES, Actor, Stage, Status, WaitingOn
from models.state import Transition
from store.tables import OrderEventRow, OrderRow

MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 50
_TERMINAL = [s.value for s in TERMINAL_STAGES]


class OrderSummary(Frozen):
    """One order as the read model knows it: the latest recorded transition."""

    model_config = ConfigDict(from_attributes=True)

    order_id: str
    workflow_id: str
    kind: OrderKind
    province: Province
    filing_number: str
    entity_filing_number: str
    stage: Stage
    status: Status
    waiting_on: WaitingOn
    overdue: bool
    placed_at: datetime
    updated_at: datetime
    last_seq: int
    review_due_at: datetime | None = None
    notice_reference: str | None = None


class OrderPage(Frozen):
    """One page of a list, newest placed first. Pass ``next_cursor`` back for the next page; ``None`` at the end."""

    orders: list[OrderSummary]
    next_cursor: str | None = None


class Stats(Frozen):
    """Counts for dashboards. ``by_*`` count every order; ``open`` and ``overdue`` only orders not yet ended."""

    total: int = 0
    open: int = 0
    overdue: int = 0
    by_stage: dict[Stage, int] = Field(default_factory=dict)
    by_status: dict[Status, int] = Field(default_factory=dict)
    by_province: dict[Province, int] = Field(default_factory=dict)
    by_kind: dict[OrderKind, int] = Field(default_factory=dict)


class InvalidCursor(ValueError):
    """The cursor was not produced by :func:`list_orders` (or was damaged on the way)."""


def encode_cursor(placed_at: datetime, order_id: str) -> str:
    raw = json.dumps([placed_at.isoformat(), order_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        placed_at, order_id = json.loads(raw)
        at = datetime.fromisoformat(placed_at)
    except (binascii.Error, ValueError, TypeError) as e:
        raise InvalidCursor(f"invalid cursor {cursor!r}") from e
    if at.tzinfo is None or not isinstance(order_id, str):
        raise InvalidCursor(f"invalid cursor {cursor!r}")
    return at, order_id


async def get_order(session: AsyncSession, order_id: str) -> OrderSummary | None:
    row = await session.get(OrderRow, order_id)
    return None if row is None else OrderSummary.model_validate(row)


async def find_open_order_for_filing(session: AsyncSession, entity_filing_number: str) -> OrderSummary | None:
    """The order of this filing entity that has not ended yet, if any (R-LOCK-1 allows at most one).

    Accepts the entity's filing number or any of its websites' or apps' numbers; ``None`` for a malformed one.
    """
    try:
        entity = entity_number_of(entity_filing_number)
    except ValueError:
        return None
    stmt = (
        select(OrderRow)
        .where(OrderRow.entity_filing_number == entity, OrderRow.stage.not_in(_TERMINAL))
        .order_by(OrderRow.placed_at.desc(), OrderRow.order_id)
        .limit(1)
    )
    row = (await session.scalars(stmt)).first()
    return None if row is None else OrderSummary.model_validate(row)


class ListFilters(TypedDict, total=False):
    """What :func:`list_orders` takes besides the session; every filter is optional."""

    stage: Stage | None
    status: Status | None
    province: Province | None
    kind: OrderKind | None
    overdue: bool | None
    filing_number: str | None
    placed_from: datetime | None
    placed_to: datetime | None
    limit: int
    cursor: str | None


def list_statement(**filters: Unpack[ListFilters]) -> Select[OrderRow]:
    """The statement behind :func:`list_orders` (one row more than ``limit``), for callers that want its plan."""
    limit = filters.get("limit", DEFAULT_PAGE_SIZE)
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE_SIZE}, got {limit}")
    conditions: list[ColumnElement[bool]] = []
    for name in ("stage", "status", "province", "kind"):
        value = filters.get(name)
        if value is not None:
            conditions.append(getattr(OrderRow, name) == value.value)  # type: ignore[attr-defined]
    if (overdue := filters.get("overdue")) is not None:
        conditions.append(OrderRow.overdue.is_(overdue))
    if (filing_number := filters.get("filing_number")) is not None:
        number = filing_number.strip()
        conditions.append(or_(OrderRow.filing_number == number, OrderRow.entity_filing_number == number))
    if (placed_from := filters.get("placed_from")) is not None:
        conditions.append(OrderRow.placed_at >= placed_from)
    if (placed_to := filters.get("placed_to")) is not None:
        conditions.append(OrderRow.placed_at < placed_to)
    if (cursor := filters.get("cursor")) is not None:
        at, order_id = decode_cursor(cursor)
        # The first condition is implied by the second; it is there for the planner, which can start an index
        # scan on it (the OR alone it can only filter with, reading every newer row first).
        conditions.append(OrderRow.placed_at <= at)
        conditions.append(or_(OrderRow.placed_at < at, and_(OrderRow.placed_at == at, OrderRow.order_id > order_id)))
    return (
        select(OrderRow)
        .where(*conditions)
        .order_by(OrderRow.placed_at.desc(), OrderRow.order_id)
        .limit(limit + 1)  # one more tells whether a next page exists
    )


async def list_orders(session: AsyncSession, **filters: Unpack[ListFilters]) -> OrderPage:
    """Orders matching every given filter, newest placed first (ties by ``order_id``), ``limit`` (50) per page.

    ``filing_number`` matches the order's own number or, given an entity's number, every order of that entity.
    ``placed_from`` is inclusive, ``placed_to`` exclusive. Keyset pagination: a page is stable while orders are
    added or updated, and a deep page costs what the first one does. Raises :class:`InvalidCursor` for a cursor
    this function did not produce and ``ValueError`` for a ``limit`` outside 1..500.
    """
    limit = filters.get("limit", DEFAULT_PAGE_SIZE)
    rows = list((await session.scalars(list_statement(**filters))).all())
    orders = [OrderSummary.model_validate(row) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = orders[-1]
        next_cursor = encode_cursor(last.placed_at, last.order_id)
    return OrderPage(orders=orders, next_cursor=next_cursor)


async def order_timeline(session: AsyncSession, order_id: str) -> list[Transition]:
    """Every recorded transition of the order, oldest first (empty for an unknown order)."""
    stmt = select(OrderEventRow).where(OrderEventRow.order_id == order_id).order_by(OrderEventRow.seq)
    return [
        Transition(
            seq=row.seq,
            at=row.at,
            stage=Stage(row.stage),
            status=Status(row.status),
            actor=Actor(row.actor),
            actor_name=row.actor_name,
            reason=row.reason,
        )
        for row in await session.scalars(stmt)
    ]


# The columns the dashboard counts by, in the order of the covering index ``ix_orders_counts``.
COUNTED_COLUMNS = (OrderRow.stage, OrderRow.status, OrderRow.province, OrderRow.kind, OrderRow.overdue)


def stats_statement() -> Select[str, str, str, str, bool, int]:
    """One pass over the read model: the number of orders per combination of stage, status, province, kind and
    overdue (a few hundred groups at most). Answered from the covering index ``ix_orders_counts`` without reading
    the table (PostgreSQL: an index-only scan; SQLite: a covering index scan)."""
    return select(*COUNTED_COLUMNS, func.count()).group_by(*COUNTED_COLUMNS)


async def stats(session: AsyncSession) -> Stats:
    """Counts over the whole read model: one grouped query, added up here (:func:`stats_statement`)."""
    total = open_ = overdue_ = 0
    by: dict[str, Counter[str]] = {name: Counter() for name in ("stage", "status", "province", "kind")}
    for stage, status, province, kind, overdue, n in await session.execute(stats_statement()):
        total += n
        by["stage"][stage] += n
        by["status"][status] += n
        by["province"][province] += n
        by["kind"][kind] += n
        if stage not in _TERMINAL:
            open_ += n
            if overdue:
                overdue_ += n
    return Stats.model_validate(
        {
            "total": total,
            "open": open_,
            "overdue": overdue_,
            **{f"by_{name}": dict(counts) for name, counts in by.items()},
        }
    )
