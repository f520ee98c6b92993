"""``GET /v1/stats``: the read model's counts, and how long orders stay in each stage.

Time in a stage is measured on the audit trail (``order_events``): each transition lasts until the order's next one,
and an order's time in a stage is the sum over its visits (a document returned to collection counts both times;
paused time counts where the order was paused). Only time that has ended counts: an order still in a stage adds
nothing to that stage until it moves on. Ended stages (completed, invalid, abandoned) have no duration.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import Field
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.stages import Stage
from starter.api.auth import READERS, Principal, require
from starter.api.context import ApiContext, get_context
from starter.api.errors import error_responses
from store import queries
from store.tables import OrderEventRow, UtcDateTime

router = APIRouter(prefix="/v1", tags=["stats"])

DAY = timedelta(days=1)


class StageTimes(queries.Stats):
    """``store.queries.Stats`` plus, per stage, the median days an order spent there and how many orders that
    median is over."""

    median_days_in_stage: dict[Stage, float] = Field(default_factory=dict)
    orders_measured_in_stage: dict[Stage, int] = Field(default_factory=dict)


async def time_in_stages(session: AsyncSession) -> dict[Stage, list[timedelta]]:
    """For each stage, the time every order that left it spent there (one entry per order)."""
    next_at = (
        func.lead(OrderEventRow.at, type_=UtcDateTime())
        .over(partition_by=OrderEventRow.order_id, order_by=OrderEventRow.seq)
        .label("next_at")
    )
    stmt = select(OrderEventRow.order_id, OrderEventRow.stage, OrderEventRow.at, next_at)
    spent: dict[tuple[str, str], timedelta] = defaultdict(timedelta)
    for order_id, stage, at, until in await session.execute(stmt):
        if until is not None:
            spent[(order_id, stage)] += until - at
    by_stage: dict[Stage, list[timedelta]] = defaultdict(list)
    for (_, stage), duration in spent.items():
        by_stage[Stage(stage)].append(duration)
    return dict(by_stage)


async def stage_times(session: AsyncSession) -> StageTimes:
    counts = await queries.stats(session)
    times = await time_in_stages(session)
    return StageTimes(
        **counts.model_dump(),
        median_days_in_stage={
            stage: round(statistics.median(d / DAY for d in durations), 3) for stage, durations in times.items()
        },
        orders_measured_in_stage={stage: len(durations) for stage, durations in times.items()},
    )


@router.get("/stats", response_model=StageTimes, summary="Counts for dashboards", responses=error_responses(401, 403))
async def get_stats(
    ctx: Annotated[ApiContext, Depends(get_context)],
    caller: Annotated[Principal, Depends(require(*READERS))],
) -> StageTimes:
    """Orders by stage, status, province and kind; open and overdue counts; median days spent in each stage."""
    async with ctx.sessions() as session:
        return await stage_times(session)
