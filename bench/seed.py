"""A realistic read model, written in bulk: orders and their audit trail as a year of production would leave them.

The mix (seeded, so every run writes the same rows):

- ``placed_at`` spread over the last 365 days, more orders recently (a growing service);
- provinces weighted towards the big ones (Guangdong, Beijing, Zhejiang, Shanghai, Jiangsu …), every one present;
- kinds: websites 70 %, apps 20 %, entities 10 %; entity filing numbers repeat (a filing changes more than once);
- orders older than ~40 days have ended: completed 86 %, abandoned 9 %, invalid 5 %; younger ones are spread over
  the open stages the way a pipeline holds them (most waiting for documents or the administration), some paused;
- overdue: orders in the administration's review past its 20 business days (~4 weeks);
- the audit trail: one event per stage an order went through, each lasting a plausible while, so
  ``order_events`` has the 5–10 rows per order production would have.

PostgreSQL is written with ``COPY`` (asyncpg's ``copy_records_to_table``), SQLite with one ``executemany`` per table
in a transaction: seeding 100,000 orders takes seconds, not the minutes row-by-row inserts would.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from models.order import OrderKind, Province
from models.stages import PIPELINE, Actor, Stage, Status, WaitingOn
from store.tables import order_events, orders

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)  # fixed, so a seed is the same rows every time
SPAN_DAYS = 365
ENDED_AFTER_DAYS = 40

PROVINCE_WEIGHTS: dict[Province, float] = {p: 1.0 for p in Province} | {
    Province.GUANGDONG: 14.0,
    Province.BEIJING: 10.0,
    Province.ZHEJIANG: 8.0,
    Province.SHANGHAI: 8.0,
    Province.JIANGSU: 7.0,
    Province.SHANDONG: 5.0,
    Province.FUJIAN: 4.0,
    Province.SICHUAN: 4.0,
    Province.HUBEI: 3.0,
    Province.HENAN: 3.0,
}
KIND_WEIGHTS = {OrderKind.WEBSITE: 70.0, OrderKind.APP: 20.0, OrderKind.ENTITY: 10.0}
ENDED_WEIGHTS = {Stage.COMPLETED: 86.0, Stage.ABANDONED: 9.0, Stage.INVALID: 5.0}
# Where a young order is: most wait for the applicant's documents or for the administration.
OPEN_WEIGHTS = {
    Stage.VALIDATION: 0.5,
    Stage.DOCUMENT_COLLECTION: 30.0,
    Stage.AUTHENTICITY_VERIFICATION: 1.0,
    Stage.CONFIRMATION: 8.0,
    Stage.INITIAL_REVIEW: 6.0,
    Stage.SUBMISSION: 0.5,
    Stage.SMS_VERIFICATION: 6.0,
    Stage.ADMINISTRATION_REVIEW: 30.0,
    Stage.CORRECTION: 3.0,
    Stage.RECORD_UPDATE: 0.5,
    Stage.COMPLETED: 10.0,
    Stage.ABANDONED: 3.0,
    Stage.INVALID: 1.5,
}
# How long an order typically stays in a stage before the next one (hours): min, mode, max.
STAGE_HOURS = {
    Stage.VALIDATION: (0.001, 0.01, 0.1),
    Stage.DOCUMENT_COLLECTION: (0.5, 30.0, 300.0),
    Stage.AUTHENTICITY_VERIFICATION: (0.001, 0.01, 0.2),
    Stage.CONFIRMATION: (0.1, 8.0, 120.0),
    Stage.INITIAL_REVIEW: (1.0, 16.0, 72.0),
    Stage.SUBMISSION: (0.001, 0.01, 0.1),
    Stage.SMS_VERIFICATION: (0.05, 2.0, 24.0),
    Stage.ADMINISTRATION_REVIEW: (24.0, 240.0, 640.0),
    Stage.CORRECTION: (2.0, 48.0, 240.0),
    Stage.RECORD_UPDATE: (0.001, 0.01, 1.0),
}
WAITING_ON = {
    Stage.VALIDATION: WaitingOn.SYSTEM,
    Stage.DOCUMENT_COLLECTION: WaitingOn.APPLICANT,
    Stage.AUTHENTICITY_VERIFICATION: WaitingOn.SYSTEM,
    Stage.CONFIRMATION: WaitingOn.APPLICANT,
    Stage.INITIAL_REVIEW: WaitingOn.REVIEWER,
    Stage.SUBMISSION: WaitingOn.SYSTEM,
    Stage.SMS_VERIFICATION: WaitingOn.APPLICANT,
    Stage.ADMINISTRATION_REVIEW: WaitingOn.ADMINISTRATION,
    Stage.CORRECTION: WaitingOn.APPLICANT,
    Stage.RECORD_UPDATE: WaitingOn.SYSTEM,
}
PAUSABLE = {Stage.DOCUMENT_COLLECTION, Stage.CONFIRMATION, Stage.SMS_VERIFICATION}
OVERDUE_AFTER = timedelta(days=28)  # 20 business days


@dataclass(frozen=True)
class Seeded:
    orders: int
    events: int
    seconds: float
    sample: dict[str, Any]  # values that exist, for filters (a filing number, a busy and a rare province)


class _Picker:
    """``random.choices`` with the cumulative weights worked out once (it is called 300,000 times a seed)."""

    def __init__(self, weights: dict[Any, float]) -> None:
        self.values = list(weights)
        self.cum = list(itertools.accumulate(weights.values()))

    def __call__(self, rng: random.Random) -> Any:
        return rng.choices(self.values, cum_weights=self.cum)[0]


def _path_to(rng: random.Random, stage: Stage) -> list[Stage]:
    """The stages an order went through to reach ``stage`` (an abandoned one stopped before submission)."""
    if stage is Stage.INVALID:
        return [Stage.VALIDATION, Stage.INVALID]
    if stage is Stage.ABANDONED:
        stop = rng.choice(PIPELINE[1:5])
        return [*PIPELINE[: PIPELINE.index(stop) + 1], Stage.ABANDONED]
    if stage is Stage.CORRECTION:
        return [*PIPELINE[: PIPELINE.index(Stage.ADMINISTRATION_REVIEW) + 1], Stage.CORRECTION]
    path = list(PIPELINE[: PIPELINE.index(stage) + 1])
    if stage is Stage.COMPLETED and rng.random() < 0.08:  # rejected once, corrected, resubmitted
        review = path.index(Stage.ADMINISTRATION_REVIEW)
        path[review + 1 : review + 1] = [
            Stage.CORRECTION,
            Stage.SUBMISSION,
            Stage.SMS_VERIFICATION,
            Stage.ADMINISTRATION_REVIEW,
        ]
    return path


def _hours(rng: random.Random, stage: Stage) -> float:
    low, mode, high = STAGE_HOURS[stage]
    return rng.triangular(low, high, mode)


_VALUE: dict[Any, str] = {m: m.value for enum in (Stage, Status, Province, OrderKind, WaitingOn) for m in enum}


@dataclass
class Rows:
    """The rows of both tables, as tuples in their columns' order (what COPY and ``executemany`` take)."""

    orders: list[tuple[Any, ...]]
    events: list[tuple[Any, ...]]
    sample: dict[str, Any]  # values that exist, for filters: a filing number and its entity's


ORDER_COLUMNS = [c.name for c in orders.columns]
EVENT_COLUMNS = [c.name for c in order_events.columns]


def generate(n: int, seed: int = 20261128) -> Rows:
    """``n`` orders, each with its audit trail, the newest ``placed_at`` at most ``NOW``. Deterministic."""
    assert ORDER_COLUMNS[:7] == [
        "order_id",
        "workflow_id",
        "kind",
        "province",
        "filing_number",
        "entity_filing_number",
        "stage",
    ], ORDER_COLUMNS
    assert EVENT_COLUMNS == ["order_id", "seq", "at", "stage", "status", "actor", "actor_name", "reason"]
    rng = random.Random(seed)
    province_of, kind_of = _Picker(PROVINCE_WEIGHTS), _Picker(KIND_WEIGHTS)
    ended_stage, open_stage = _Picker(ENDED_WEIGHTS), _Picker(OPEN_WEIGHTS)
    abbreviations = {p: p.abbreviation for p in Province}
    ended_status = {Stage.COMPLETED: Status.APPROVED, Stage.ABANDONED: Status.ABANDONED, Stage.INVALID: Status.INVALID}
    system, active, review = Actor.SYSTEM.value, Status.ACTIVE.value, Stage.ADMINISTRATION_REVIEW.value
    entities = max(n * 4 // 5, 1)  # one filing entity in five has more than one order
    rows = Rows(orders=[], events=[], sample={})
    for i in range(n):
        # Growth: more recent orders (density rising towards NOW).
        age = timedelta(days=SPAN_DAYS * (1 - rng.random() ** 0.6), seconds=rng.random())
        placed_at = NOW - age
        province, kind = province_of(rng), kind_of(rng)
        stage = ended_stage(rng) if age.days > ENDED_AFTER_DAYS else open_stage(rng)
        final_status = ended_status.get(stage, Status.ACTIVE)
        if stage in PAUSABLE and rng.random() < 0.15:
            final_status = Status.PAUSED
        path = _path_to(rng, stage)
        order_id = f"ord-{i:07d}-{rng.getrandbits(32):08x}"
        at, entered_review = placed_at, None
        last = len(path)
        for seq, step in enumerate(path, start=1):
            if seq > 1:
                at = min(at + timedelta(hours=_hours(rng, path[seq - 2])), NOW)
            value = _VALUE[step]
            if value == review:
                entered_review = at
            if seq < last:
                rows.events.append((order_id, seq, at, value, active, system, "", ""))
            elif stage is Stage.ABANDONED:
                rows.events.append((order_id, seq, at, value, final_status.value, "support", "support-bench", ""))
            else:
                rows.events.append((order_id, seq, at, value, _VALUE[final_status], system, "", ""))
        serial = rng.randrange(entities) + 10_000_000
        entity = f"{abbreviations[province]}ICP备{serial:08d}号"
        number = (
            entity if kind is OrderKind.ENTITY else f"{entity}-{1 + serial % 3}{'A' if kind is OrderKind.APP else ''}"
        )
        waiting = WaitingOn.SUPPORT if final_status is Status.PAUSED else WAITING_ON.get(stage, WaitingOn.NOBODY)
        overdue = stage is Stage.ADMINISTRATION_REVIEW and entered_review is not None
        overdue = overdue and NOW - entered_review > OVERDUE_AFTER  # type: ignore[operator]
        rows.orders.append(
            (
                order_id,
                f"icp-filing-{province.value}-{serial}",
                _VALUE[kind],
                _VALUE[province],
                number,
                entity,
                _VALUE[stage],
                _VALUE[final_status],
                _VALUE[waiting],
                overdue,
                placed_at,
                at,
                last,
                entered_review + OVERDUE_AFTER if entered_review is not None else None,
                f"N{serial}" if stage is Stage.COMPLETED else None,
            )
        )
        if i == n // 2:
            rows.sample = {"filing_number": number, "entity_filing_number": entity}
    return rows


async def seed(engine: AsyncEngine, rows: Rows, *, batch: int = 50_000) -> Seeded:
    """Write ``rows`` into the migrated, empty read model behind ``engine``, then refresh the planner's
    statistics."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    if engine.dialect.name == "postgresql":
        async with engine.begin() as connection:
            raw = await connection.get_raw_connection()
            driver: Any = raw.driver_connection
            await driver.copy_records_to_table("orders", records=rows.orders, columns=ORDER_COLUMNS)
            await driver.copy_records_to_table("order_events", records=rows.events, columns=EVENT_COLUMNS)
    else:
        database = engine.url.database
        assert database is not None
        await asyncio.to_thread(_sqlite_bulk, database, rows, batch)
    await _analyze(engine)
    return Seeded(
        orders=len(rows.orders), events=len(rows.events), seconds=round(loop.time() - t0, 1), sample=rows.sample
    )


def _sqlite_bulk(path: str, rows: Rows, batch: int) -> None:
    """``executemany`` straight on the file, instants written the way ``store.tables.UtcDateTime`` stores them
    on SQLite (UTC, no offset, microseconds)."""

    def instant(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        return value

    with contextlib.closing(sqlite3.connect(path)) as connection, connection:
        for table, columns, data in (
            ("orders", ORDER_COLUMNS, rows.orders),
            ("order_events", EVENT_COLUMNS, rows.events),
        ):
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
            for start in range(0, len(data), batch):
                connection.executemany(sql, ([instant(v) for v in row] for row in data[start : start + batch]))


async def _analyze(engine: AsyncEngine) -> None:
    """Statistics for the planner, and (PostgreSQL) a vacuumed visibility map, as autovacuum would leave a table
    that has been there a while: without it PostgreSQL cannot use index-only scans."""
    if engine.dialect.name == "postgresql":
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.exec_driver_sql("VACUUM ANALYZE orders")
            await connection.exec_driver_sql("VACUUM ANALYZE order_events")
    else:
        async with engine.begin() as connection:
            await connection.exec_driver_sql("ANALYZE")
