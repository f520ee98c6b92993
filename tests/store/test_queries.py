"""The read helpers behind the client facade and the API: one order, filtered lists, pages, timelines, counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models.order import OrderKind, Province
from models.stages import Actor, Stage, Status, WaitingOn
from store.queries import (
    InvalidCursor,
    OrderSummary,
    find_open_order_for_filing,
    get_order,
    list_orders,
    order_timeline,
    stats,
)
from store.tables import OrderEventRow, OrderRow

Sessions = async_sessionmaker[AsyncSession]
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def order_row(
    order_id: str,
    *,
    placed_at: datetime = T0,
    stage: Stage = Stage.DOCUMENT_COLLECTION,
    status: Status = Status.ACTIVE,
    province: Province = Province.BEIJING,
    kind: OrderKind = OrderKind.WEBSITE,
    serial: str = "12345678",
    overdue: bool = False,
) -> OrderRow:
    entity = f"{province.abbreviation}ICP备{serial}号"
    filing_number = entity if kind is OrderKind.ENTITY else f"{entity}-1" + ("A" if kind is OrderKind.APP else "")
    return OrderRow(
        order_id=order_id,
        workflow_id=f"icp-filing-{province.value}-{serial}",
        kind=kind.value,
        province=province.value,
        filing_number=filing_number,
        entity_filing_number=entity,
        stage=stage.value,
        status=status.value,
        waiting_on=WaitingOn.APPLICANT.value,
        overdue=overdue,
        placed_at=placed_at,
        updated_at=placed_at + timedelta(minutes=5),
        last_seq=3,
    )


async def add(sessions: Sessions, *rows: OrderRow | OrderEventRow) -> None:
    async with sessions() as session, session.begin():
        session.add_all(rows)


async def page_ids(sessions: Sessions, **filters: object) -> list[str]:
    async with sessions() as session:
        page = await list_orders(session, **filters)  # type: ignore[arg-type]
    return [o.order_id for o in page.orders]


async def test_get_order_returns_the_summary_with_enums_and_utc_instants(db_sessions: Sessions) -> None:
    await add(db_sessions, order_row("o-1", kind=OrderKind.APP, province=Province.JIANGSU))
    async with db_sessions() as session:
        order = await get_order(session, "o-1")
        missing = await get_order(session, "o-404")
    assert isinstance(order, OrderSummary)
    assert order.kind is OrderKind.APP
    assert order.province is Province.JIANGSU
    assert order.stage is Stage.DOCUMENT_COLLECTION
    assert order.filing_number == "苏ICP备12345678号-1A"
    assert order.entity_filing_number == "苏ICP备12345678号"
    assert order.placed_at == T0 and order.placed_at.tzinfo is not None
    assert missing is None


async def test_find_open_order_for_filing_by_entity_or_service_number_ignores_ended_orders(
    db_sessions: Sessions,
) -> None:
    await add(
        db_sessions,
        order_row("done", stage=Stage.COMPLETED, status=Status.APPROVED, placed_at=T0),
        order_row("dropped", stage=Stage.ABANDONED, status=Status.ABANDONED, placed_at=T0 + timedelta(days=1)),
        order_row("live", stage=Stage.SMS_VERIFICATION, placed_at=T0 + timedelta(days=2)),
        order_row("other-entity", serial="87654321", stage=Stage.INVALID, status=Status.INVALID),
    )
    async with db_sessions() as session:
        by_entity = await find_open_order_for_filing(session, "京ICP备12345678号")
        by_website = await find_open_order_for_filing(session, "京ICP备12345678号-3")
        none_open = await find_open_order_for_filing(session, "京ICP备87654321号")
        not_a_number = await find_open_order_for_filing(session, "nonsense")
    assert by_entity is not None and by_entity.order_id == "live"
    assert by_website is not None and by_website.order_id == "live"
    assert none_open is None
    assert not_a_number is None


async def test_list_orders_applies_every_filter(db_sessions: Sessions) -> None:
    await add(
        db_sessions,
        order_row("bj-web", placed_at=T0),
        order_row("bj-app", kind=OrderKind.APP, placed_at=T0 + timedelta(hours=1)),
        order_row(
            "gd-entity",
            province=Province.GUANGDONG,
            kind=OrderKind.ENTITY,
            serial="11112222",
            placed_at=T0 + timedelta(hours=2),
        ),
        order_row(
            "sh-review",
            province=Province.SHANGHAI,
            serial="33334444",
            stage=Stage.ADMINISTRATION_REVIEW,
            overdue=True,
            placed_at=T0 + timedelta(hours=3),
        ),
        order_row(
            "sh-paused",
            province=Province.SHANGHAI,
            serial="55556666",
            status=Status.PAUSED,
            placed_at=T0 + timedelta(hours=4),
        ),
    )
    assert await page_ids(db_sessions) == ["sh-paused", "sh-review", "gd-entity", "bj-app", "bj-web"]
    assert await page_ids(db_sessions, stage=Stage.ADMINISTRATION_REVIEW) == ["sh-review"]
    assert await page_ids(db_sessions, status=Status.PAUSED) == ["sh-paused"]
    assert await page_ids(db_sessions, province=Province.SHANGHAI) == ["sh-paused", "sh-review"]
    assert await page_ids(db_sessions, kind=OrderKind.ENTITY) == ["gd-entity"]
    assert await page_ids(db_sessions, overdue=True) == ["sh-review"]
    assert await page_ids(db_sessions, overdue=False) == ["sh-paused", "gd-entity", "bj-app", "bj-web"]
    assert await page_ids(db_sessions, filing_number="京ICP备12345678号-1A") == ["bj-app"]
    # An entity's number finds every order of that entity, its websites' and apps' included.
    assert await page_ids(db_sessions, filing_number="京ICP备12345678号") == ["bj-app", "bj-web"]
    assert await page_ids(db_sessions, placed_from=T0 + timedelta(hours=1), placed_to=T0 + timedelta(hours=3)) == [
        "gd-entity",
        "bj-app",
    ]
    assert await page_ids(db_sessions, province=Province.SHANGHAI, status=Status.ACTIVE) == ["sh-review"]


async def test_cursor_pagination_visits_every_order_once_newest_first_with_ties_by_order_id(
    db_sessions: Sessions,
) -> None:
    placed = [T0, T0, T0 + timedelta(minutes=1), T0 + timedelta(minutes=1), T0 + timedelta(minutes=1), T0]
    ids = ["c", "a", "e", "d", "f", "b"]
    await add(db_sessions, *(order_row(i, placed_at=at) for i, at in zip(ids, placed, strict=True)))
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        async with db_sessions() as session:
            page = await list_orders(session, limit=4 if pages == 0 else 1, cursor=cursor)
        seen += [o.order_id for o in page.orders]
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == ["d", "e", "f", "a", "b", "c"]
    assert pages == 3


async def test_cursor_pagination_keeps_the_filters_and_ends_without_a_cursor(db_sessions: Sessions) -> None:
    await add(
        db_sessions,
        *(order_row(f"bj-{i}", placed_at=T0 + timedelta(minutes=i)) for i in range(5)),
        *(order_row(f"gd-{i}", province=Province.GUANGDONG, placed_at=T0 + timedelta(minutes=i)) for i in range(5)),
    )
    async with db_sessions() as session:
        first = await list_orders(session, province=Province.GUANGDONG, limit=3)
        assert first.next_cursor is not None
        second = await list_orders(session, province=Province.GUANGDONG, limit=3, cursor=first.next_cursor)
        exact = await list_orders(session, province=Province.BEIJING, limit=5)
    assert [o.order_id for o in first.orders] == ["gd-4", "gd-3", "gd-2"]
    assert [o.order_id for o in second.orders] == ["gd-1", "gd-0"]
    assert second.next_cursor is None
    assert len(exact.orders) == 5 and exact.next_cursor is None


async def test_list_orders_refuses_a_forged_cursor_and_a_limit_out_of_range(db_sessions: Sessions) -> None:
    async with db_sessions() as session:
        with pytest.raises(InvalidCursor):
            await list_orders(session, cursor="not-a-cursor")
        with pytest.raises(ValueError, match="limit"):
            await list_orders(session, limit=0)
        with pytest.raises(ValueError, match="limit"):
            await list_orders(session, limit=501)


async def test_order_timeline_lists_transitions_oldest_first(db_sessions: Sessions) -> None:
    await add(
        db_sessions,
        *(
            OrderEventRow(
                order_id="o-1",
                seq=seq,
                at=T0 + timedelta(hours=seq),
                stage=stage.value,
                status=Status.ACTIVE.value,
                actor=actor.value,
                actor_name=name,
                reason=reason,
            )
            for seq, stage, actor, name, reason in [
                (2, Stage.DOCUMENT_COLLECTION, Actor.SYSTEM, "", "valid"),
                (1, Stage.VALIDATION, Actor.BACKEND, "backend", "placed"),
                (3, Stage.CONFIRMATION, Actor.APPLICANT, "张三", "documents verified"),
            ]
        ),
        OrderEventRow(
            order_id="o-2", seq=1, at=T0, stage="validation", status="active", actor="backend", actor_name="", reason=""
        ),
    )
    async with db_sessions() as session:
        timeline = await order_timeline(session, "o-1")
        unknown = await order_timeline(session, "o-404")
    assert [t.seq for t in timeline] == [1, 2, 3]
    assert [t.stage for t in timeline] == [Stage.VALIDATION, Stage.DOCUMENT_COLLECTION, Stage.CONFIRMATION]
    assert timeline[2].actor is Actor.APPLICANT and timeline[2].actor_name == "张三"
    assert timeline[0].at == T0 + timedelta(hours=1)
    assert unknown == []


async def test_stats_count_by_stage_status_province_kind_and_open_overdue(db_sessions: Sessions) -> None:
    await add(
        db_sessions,
        order_row("a", stage=Stage.ADMINISTRATION_REVIEW, overdue=True),
        order_row("b", stage=Stage.ADMINISTRATION_REVIEW, province=Province.GUANGDONG, kind=OrderKind.APP),
        order_row("c", stage=Stage.COMPLETED, status=Status.APPROVED, overdue=True),  # overdue once, ended now
        order_row("d", kind=OrderKind.ENTITY, status=Status.PAUSED),
    )
    async with db_sessions() as session:
        counts = await stats(session)
    assert counts.total == 4
    assert counts.open == 3
    assert counts.overdue == 1
    assert counts.by_stage == {
        Stage.ADMINISTRATION_REVIEW: 2,
        Stage.COMPLETED: 1,
        Stage.DOCUMENT_COLLECTION: 1,
    }
    assert counts.by_status == {Status.ACTIVE: 2, Status.APPROVED: 1, Status.PAUSED: 1}
    assert counts.by_province == {Province.BEIJING: 3, Province.GUANGDONG: 1}
    assert counts.by_kind == {OrderKind.WEBSITE: 2, OrderKind.APP: 1, OrderKind.ENTITY: 1}


async def test_stats_of_an_empty_read_model_are_zero(db_sessions: Sessions) -> None:
    async with db_sessions() as session:
        counts = await stats(session)
    assert counts.total == counts.open == counts.overdue == 0
    assert counts.by_stage == {}
