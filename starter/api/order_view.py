"""One order as callers see it: live from its workflow, or from the read model once Temporal no longer has it.

The workflow is the truth for a live order (DESIGN.md: one source of truth per question). A closed order outlives
Temporal's retention in the read model, which keeps its stage, status and whole timeline: that is what is served
when the workflow cannot be found or cannot answer (worker or server down), marked ``source: read_model``.
"""

from __future__ import annotations

import logging
from typing import Literal

from temporalio.client import WorkflowQueryFailedError
from temporalio.service import RPCError

from models.state import Deadline, DeadlineKind, OrderState
from starter.api.context import ApiContext
from starter.client import OrderNotFound
from store import queries

log = logging.getLogger("icpflow.api")


class OrderDetail(OrderState):
    """The order snapshot (see ``models.state.OrderState``) and where it came from: ``workflow`` (live, complete)
    or ``read_model`` (stage, status, deadlines known to the read model and the timeline only)."""

    source: Literal["workflow", "read_model"] = "workflow"


def from_workflow(state: OrderState) -> OrderDetail:
    return OrderDetail.model_validate(state.model_dump() | {"source": "workflow"})


async def from_read_model(ctx: ApiContext, order_id: str) -> OrderDetail | None:
    async with ctx.sessions() as session:
        summary = await queries.get_order(session, order_id)
        if summary is None:
            return None
        timeline = await queries.order_timeline(session, order_id)
    deadlines = []
    if summary.review_due_at is not None and not summary.stage.terminal:
        deadlines.append(Deadline(kind=DeadlineKind.REVIEW_DUE, at=summary.review_due_at))
    return OrderDetail(
        order_id=summary.order_id,
        workflow_id=summary.workflow_id,
        kind=summary.kind,
        filing_number=summary.filing_number,
        province=summary.province,
        stage=summary.stage,
        status=summary.status,
        waiting_on=summary.waiting_on,
        placed_at=summary.placed_at,
        updated_at=summary.updated_at,
        overdue=summary.overdue,
        notice_reference=summary.notice_reference,
        deadlines=deadlines,
        timeline=timeline,
        source="read_model",
    )


async def load_order(ctx: ApiContext, order_id: str) -> OrderDetail:
    """The order's state; raises :class:`OrderNotFound` when neither Temporal nor the read model knows it."""
    try:
        return from_workflow(await ctx.orders.state(order_id))
    except OrderNotFound:
        found = await from_read_model(ctx, order_id)
        if found is None:
            raise
        return found
    except (RPCError, WorkflowQueryFailedError) as err:
        found = await from_read_model(ctx, order_id)
        if found is None:
            raise
        log.warning("order %s served from the read model: its workflow did not answer (%s)", order_id, err)
        return found
