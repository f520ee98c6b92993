"""``GET /v1/stats``: the read model's counts, and how long orders stay in each stage.

Time in a stage is measured on the audit trail (``order_events``): each transition lasts until the order's next one,
and an order's time in a stage is the sum over its visits (a document returned to collection counts both times;
paused time counts where the order was paused). Only time that has ended counts: an order still in a stage adds
nothing to that stage until it moves on. Ended stages (completed, invalid, abandoned) have no duration.

At scale these are not per-request work: the medians read the whole audit trail (about nine events per order:
seconds at 100,000 orders) and the counts the whole of ``ix_orders_counts``. So the answer is a snapshot at most
``api_stats_max_age_seconds`` old (``as_of`` says when it was computed): a request finding it older gets it at once
and starts one refresh in the background; only the first request of a process waits. ``0`` computes every request.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import Field
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

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
    as_of: datetime | None = Field(default=None, description="when these figures were computed")


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


async def medians_in_database(session: AsyncSession) -> tuple[dict[Stage, float], dict[Stage, int]]:
    """PostgreSQL: the same medians computed by the database (``percentile_cont``), so only one row per stage
    crosses the wire instead of the whole audit trail (bench/README.md, dashboard: the snapshot's refresh cost)."""
    seconds = func.extract("epoch", OrderEventRow.at)
    spans = select(
        OrderEventRow.order_id,
        OrderEventRow.stage,
        (func.lead(seconds).over(partition_by=OrderEventRow.order_id, order_by=OrderEventRow.seq) - seconds).label(
            "spent"
        ),
    ).subquery("spans")
    per_order = (
        select(spans.c.stage, func.sum(spans.c.spent).label("spent"))
        .where(spans.c.spent.is_not(None))
        .group_by(spans.c.order_id, spans.c.stage)
        .subquery("per_order")
    )
    stmt = select(
        per_order.c.stage,
        func.percentile_cont(0.5).within_group(per_order.c.spent),
        func.count(),
    ).group_by(per_order.c.stage)
    medians: dict[Stage, float] = {}
    measured: dict[Stage, int] = {}
    for stage, median_s, count in await session.execute(stmt):
        medians[Stage(stage)] = round(float(median_s) / DAY.total_seconds(), 3)
        measured[Stage(stage)] = int(count)
    return medians, measured


async def stage_times(session: AsyncSession) -> StageTimes:
    counts = await queries.stats(session)
    if session.get_bind().dialect.name == "postgresql":
        medians, measured = await medians_in_database(session)
    else:
        times = await time_in_stages(session)
        medians = {stage: round(statistics.median(d / DAY for d in durations), 3) for stage, durations in times.items()}
        measured = {stage: len(durations) for stage, durations in times.items()}
    return StageTimes(
        **counts.model_dump(),
        median_days_in_stage=medians,
        orders_measured_in_stage=measured,
        as_of=datetime.now(UTC),
    )


class StatsSnapshot:
    """The latest :func:`stage_times`, refreshed in the background once older than ``max_age`` seconds (one
    refresh at a time). ``max_age`` 0: computed for every call."""

    def __init__(self, max_age: float) -> None:
        self.max_age = max_age
        self._value: StageTimes | None = None
        self._at = 0.0
        self._refresh: asyncio.Task[StageTimes] | None = None

    async def get(self, sessions: async_sessionmaker[AsyncSession]) -> StageTimes:
        if self.max_age <= 0:
            async with sessions() as session:
                return await stage_times(session)
        if self._refresh is None and (self._value is None or time.monotonic() - self._at > self.max_age):
            self._refresh = asyncio.create_task(self._compute(sessions))
        if self._value is None:
            assert self._refresh is not None
            return await asyncio.shield(self._refresh)
        return self._value

    async def _compute(self, sessions: async_sessionmaker[AsyncSession]) -> StageTimes:
        try:
            async with sessions() as session:
                value = await stage_times(session)
            self._value, self._at = value, time.monotonic()
            return value
        finally:
            self._refresh = None

    async def close(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._refresh


def snapshot(request: Request, max_age: float) -> StatsSnapshot:
    """The app's snapshot (one per app)."""
    found: StatsSnapshot | None = getattr(request.app.state, "stats_snapshot", None)
    if found is None:
        found = request.app.state.stats_snapshot = StatsSnapshot(max_age)
    return found


@router.get("/stats", response_model=StageTimes, summary="Counts for dashboards", responses=error_responses(401, 403))
async def get_stats(
    request: Request,
    ctx: Annotated[ApiContext, Depends(get_context)],
    caller: Annotated[Principal, Depends(require(*READERS))],
) -> StageTimes:
    """Orders by stage, status, province and kind; open and overdue counts; median days spent in each stage. A
    snapshot at most ``ICPFLOW_API_STATS_MAX_AGE_SECONDS`` old (``as_of``)."""
    return await snapshot(request, ctx.settings.api_stats_max_age_seconds).get(ctx.sessions)
