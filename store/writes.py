"""Writes to the read model's current-order rows, shared by the activity that records transitions and by
placement (which records an order as placed before any worker has run it)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from models.activity_io import OrderRecord
from models.order import entity_filing_number
from models.stages import Actor
from models.state import OrderState
from store.db import upsert_insert
from store.tables import orders

# The sequence number of the row placement writes: every recorded transition (1, 2, …) replaces it.
PLACED_SEQ = 0


async def upsert_current(session: AsyncSession, current: dict[str, Any]) -> None:
    """Insert or move forward the order's current row: a row only ever moves to a higher ``last_seq``, so a late
    or repeated write never overwrites a newer one."""
    upsert = upsert_insert(session, orders).values(current)
    await session.execute(
        upsert.on_conflict_do_update(
            index_elements=[orders.c.order_id],
            set_={name: upsert.excluded[name] for name in current if name != "order_id"},
            where=orders.c.last_seq < upsert.excluded.last_seq,
        )
    )


def current_row(record: OrderRecord) -> dict[str, Any]:
    """The order's current row as of the transition ``record``."""
    return {
        "order_id": record.order_id,
        "workflow_id": record.workflow_id,
        "kind": record.kind.value,
        "province": record.province.value,
        "filing_number": record.filing_number,
        "entity_filing_number": entity_filing_number(record.filing_number),
        "stage": record.stage.value,
        "status": record.status.value,
        "waiting_on": record.waiting_on.value,
        "overdue": record.overdue,
        "placed_at": record.placed_at,
        "updated_at": record.at,
        "last_seq": record.seq,
        "review_due_at": record.review_due_at,
        "notice_reference": record.notice_reference,
    }


def placed_row(state: OrderState) -> dict[str, Any]:
    """The row of an order its workflow has not recorded yet: placed, with no transition (``PLACED_SEQ``)."""
    return current_row(OrderRecord.of(state, seq=PLACED_SEQ, at=state.placed_at, actor=Actor.BACKEND))
