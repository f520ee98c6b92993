"""The record activities: read model and audit trail, the filing record on approval, reusable documents.

Every test runs on SQLite and on PostgreSQL (``db_sessions`` from tests/fixtures_db.py).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.records import RecordActivities
from models.activity_io import (
    ArchiveDocuments,
    FilingUpdate,
    OrderRecord,
    ReusableDocumentsQuery,
)
from models.changes import ChangeNotApplicable, apply_changes
from models.documents import DocumentRef
from models.order import (
    Change,
    ChangeField,
    Entity,
    EntityType,
    FilingRecord,
    OrderKind,
    Person,
    PlaceOrder,
    Province,
    Service,
)
from models.stages import Actor, Stage, Status, WaitingOn
from models.state import OrderState
from store import queries, writes
from store.db import DatabaseUnavailable, create_engine, is_unavailable, session_factory, upgrade
from store.tables import FilingRow, OrderEventRow, OrderRow

Sessions = async_sessionmaker[AsyncSession]
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
ENTITY_NUMBER = "京ICP备12345678号"
WEBSITE_NUMBER = "京ICP备12345678号-1"


def person(name: str, mobile: str, id_number: str = "11010519491231002X") -> Person:
    return Person(
        name=name,
        id_number=id_number,
        id_valid_until=date(2030, 1, 1),
        mobile=mobile,
        email=f"{mobile}@example.cn",
    )


BOSS = person("张三", "13800138000")
RECORD = FilingRecord(
    entity_filing_number=ENTITY_NUMBER,
    province=Province.BEIJING,
    entity=Entity(
        name="北京示例科技有限公司", id_number="91350100M000100Y43", address="北京市海淀区", person_in_charge=BOSS
    ),
    services=[
        Service(
            filing_number=WEBSITE_NUMBER,
            kind=OrderKind.WEBSITE,
            name="示例网",
            domains=["example.cn", "example.com.cn"],
            ip_addresses=["203.0.113.10"],
            person_in_charge=BOSS,
        ),
        Service(
            filing_number="京ICP备12345678号-2A",
            kind=OrderKind.APP,
            name="示例App",
            platforms=["android"],
            person_in_charge=person("李四", "13900139000", "110105194912310029"),
        ),
    ],
)


def place(changes: list[Change], order_id: str = "ord-1") -> PlaceOrder:
    return PlaceOrder(
        order_id=order_id, kind=OrderKind.WEBSITE, filing_number=WEBSITE_NUMBER, record=RECORD, changes=changes
    )


def transition(seq: int, stage: Stage, **overrides: object) -> OrderRecord:
    values: dict[str, object] = {
        "order_id": "ord-1",
        "workflow_id": "icp-filing-beijing-12345678",
        "kind": OrderKind.WEBSITE,
        "province": Province.BEIJING,
        "filing_number": WEBSITE_NUMBER,
        "stage": stage,
        "status": Status.ACTIVE,
        "waiting_on": WaitingOn.APPLICANT,
        "overdue": False,
        "placed_at": T0,
        "seq": seq,
        "at": T0 + timedelta(minutes=seq),
        "actor": Actor.SYSTEM,
    }
    return OrderRecord.model_validate(values | overrides)


def ref(n: int) -> DocumentRef:
    return DocumentRef(uri=f"file:///docs/{n}.jpg", sha256=f"{n:064x}", size=1000 + n, content_type="image/jpeg")


@pytest.fixture
def records(db_sessions: Sessions) -> RecordActivities:
    return RecordActivities(db_sessions)


async def run(fn: object, arg: object) -> object:
    return await ActivityEnvironment().run(fn, arg)  # type: ignore[arg-type]


# -- record_transition -------------------------------------------------------------------------------------------


async def test_record_transition_writes_the_current_row_and_the_audit_event(
    records: RecordActivities, db_sessions: Sessions
) -> None:
    await run(records.record_transition, transition(1, Stage.VALIDATION, actor=Actor.BACKEND, reason="placed"))
    await run(records.record_transition, transition(2, Stage.DOCUMENT_COLLECTION, notice_reference="N-1"))
    async with db_sessions() as session:
        order = await queries.get_order(session, "ord-1")
        timeline = await queries.order_timeline(session, "ord-1")
    assert order is not None
    assert order.stage is Stage.DOCUMENT_COLLECTION
    assert order.entity_filing_number == ENTITY_NUMBER
    assert order.last_seq == 2
    assert order.updated_at == T0 + timedelta(minutes=2)
    assert order.notice_reference == "N-1"
    assert [(t.seq, t.stage, t.actor) for t in timeline] == [
        (1, Stage.VALIDATION, Actor.BACKEND),
        (2, Stage.DOCUMENT_COLLECTION, Actor.SYSTEM),
    ]
    assert timeline[0].reason == "placed"


async def test_record_transition_twice_with_the_same_seq_changes_nothing(
    records: RecordActivities, db_sessions: Sessions
) -> None:
    first = transition(1, Stage.VALIDATION, reason="placed")
    await run(records.record_transition, first)
    await run(records.record_transition, first)
    # Even a different payload under an already recorded seq is ignored: seq identifies the transition.
    await run(records.record_transition, transition(1, Stage.ABANDONED, reason="replayed differently"))
    async with db_sessions() as session:
        rows = (await session.scalars(select(OrderRow))).all()
        events = (await session.scalars(select(OrderEventRow))).all()
    assert len(rows) == 1 and rows[0].stage == "validation" and rows[0].last_seq == 1
    assert [(e.seq, e.reason) for e in events] == [(1, "placed")]


async def test_a_stale_transition_does_not_overwrite_a_newer_row_but_joins_the_audit_trail(
    records: RecordActivities, db_sessions: Sessions
) -> None:
    await run(records.record_transition, transition(3, Stage.CONFIRMATION))
    await run(records.record_transition, transition(2, Stage.AUTHENTICITY_VERIFICATION))
    async with db_sessions() as session:
        order = await queries.get_order(session, "ord-1")
        timeline = await queries.order_timeline(session, "ord-1")
    assert order is not None
    assert order.stage is Stage.CONFIRMATION and order.last_seq == 3
    assert order.updated_at == T0 + timedelta(minutes=3)
    assert [t.seq for t in timeline] == [2, 3]


async def test_the_placed_row_is_found_at_once_and_every_recorded_transition_replaces_it(
    records: RecordActivities, db_sessions: Sessions
) -> None:
    """Placement writes the order's row before any worker runs it (seq 0); the workflow's first transition takes
    over, and a placement write arriving after it changes nothing."""
    order = place([Change(field=ChangeField.SERVICE_NAME, service=WEBSITE_NUMBER, new_value="新名")])
    placed = OrderState.placed(order, "icp-filing-beijing-12345678", T0)
    async with db_sessions() as session, session.begin():
        await writes.upsert_current(session, writes.placed_row(placed))
    async with db_sessions() as session:
        found = await queries.get_order(session, "ord-1")
    assert found is not None
    assert (found.workflow_id, found.stage, found.last_seq) == ("icp-filing-beijing-12345678", Stage.VALIDATION, 0)
    assert found.entity_filing_number == ENTITY_NUMBER and found.placed_at == T0

    await run(records.record_transition, transition(1, Stage.VALIDATION, reason="order placed"))
    await run(records.record_transition, transition(2, Stage.DOCUMENT_COLLECTION))
    async with db_sessions() as session, session.begin():
        await writes.upsert_current(session, writes.placed_row(placed))
    async with db_sessions() as session:
        found = await queries.get_order(session, "ord-1")
        timeline = await queries.order_timeline(session, "ord-1")
    assert found is not None and (found.stage, found.last_seq) == (Stage.DOCUMENT_COLLECTION, 2)
    assert [t.seq for t in timeline] == [1, 2]


async def test_a_newer_transition_updates_every_column_of_the_row(
    records: RecordActivities, db_sessions: Sessions
) -> None:
    await run(records.record_transition, transition(1, Stage.ADMINISTRATION_REVIEW))
    due = T0 + timedelta(days=28)
    await run(
        records.record_transition,
        transition(
            2,
            Stage.ADMINISTRATION_REVIEW,
            overdue=True,
            waiting_on=WaitingOn.ADMINISTRATION,
            status=Status.PAUSED,
            review_due_at=due,
        ),
    )
    async with db_sessions() as session:
        order = await queries.get_order(session, "ord-1")
    assert order is not None
    assert (order.overdue, order.waiting_on, order.status) == (True, WaitingOn.ADMINISTRATION, Status.PAUSED)
    assert order.review_due_at == due


# -- update_filing_record ----------------------------------------------------------------------------------------


async def test_update_filing_record_applies_the_changes_and_is_visible_after(
    records: RecordActivities, db_sessions: Sessions
) -> None:
    order = place(
        [
            Change(field=ChangeField.SERVICE_NAME, service=WEBSITE_NUMBER, new_value="新示例网"),
            Change(field=ChangeField.DOMAIN_DELETE, service=WEBSITE_NUMBER, new_value="example.com.cn"),
            Change(field=ChangeField.CONTACT_MOBILE, new_value="13700137000"),
        ]
    )
    await run(records.update_filing_record, FilingUpdate(order=order, approved_at=T0))
    await run(records.update_filing_record, FilingUpdate(order=order, approved_at=T0))  # a retry: harmless
    async with db_sessions() as session:
        row = await session.get(FilingRow, ENTITY_NUMBER)
    assert row is not None
    stored = FilingRecord.model_validate_json(row.record_json)
    website = stored.service(WEBSITE_NUMBER)
    assert website is not None
    assert website.name == "新示例网"
    assert website.domains == ["example.cn"]
    assert stored.entity.person_in_charge.mobile == "13700137000"
    assert (row.updated_by_order, row.updated_at, row.province) == ("ord-1", T0, "beijing")
    assert stored == apply_changes(RECORD, order.changes)


async def test_update_filing_record_raises_retryably_while_the_update_is_not_visible(
    db_sessions: Sessions, tmp_path: Path
) -> None:
    # The provider's other systems read from a copy that has not caught up yet.
    lagging_url = f"sqlite+aiosqlite:///{tmp_path / 'replica.db'}"
    await upgrade(lagging_url)
    lagging = create_engine(lagging_url)
    try:
        records = RecordActivities(db_sessions, filing_reader=session_factory(lagging))
        order = place([Change(field=ChangeField.SERVICE_NAME, service=WEBSITE_NUMBER, new_value="新示例网")])
        with pytest.raises(ApplicationError) as raised:
            await run(records.update_filing_record, FilingUpdate(order=order, approved_at=T0))
    finally:
        await lagging.dispose()
    assert raised.value.type == "FilingUpdateNotVisible"
    assert not raised.value.non_retryable


async def test_a_late_retry_of_an_older_approval_does_not_undo_a_newer_one(
    records: RecordActivities, db_sessions: Sessions
) -> None:
    older = place([Change(field=ChangeField.SERVICE_NAME, service=WEBSITE_NUMBER, new_value="旧名")], "ord-1")
    newer = place([Change(field=ChangeField.SERVICE_NAME, service=WEBSITE_NUMBER, new_value="新名")], "ord-2")
    await run(records.update_filing_record, FilingUpdate(order=newer, approved_at=T0 + timedelta(days=30)))
    await run(records.update_filing_record, FilingUpdate(order=older, approved_at=T0))
    async with db_sessions() as session:
        row = await session.get(FilingRow, ENTITY_NUMBER)
    assert row is not None and row.updated_by_order == "ord-2"
    website = FilingRecord.model_validate_json(row.record_json).service(WEBSITE_NUMBER)
    assert website is not None and website.name == "新名"


async def test_a_change_that_cannot_be_applied_fails_without_retry(records: RecordActivities) -> None:
    order = place([Change(field=ChangeField.DOMAIN_ADD, service=WEBSITE_NUMBER, new_value="new.cn")])
    with pytest.raises(ApplicationError) as raised:
        await run(records.update_filing_record, FilingUpdate(order=order, approved_at=T0))
    assert raised.value.non_retryable
    assert "R-DOM-1" in str(raised.value)


# -- apply_changes (pure) ----------------------------------------------------------------------------------------


def test_apply_changes_updates_entity_fields_and_leaves_the_input_untouched() -> None:
    new_boss = person("王五", "13600136000", "110105194912310045")
    changed = apply_changes(
        RECORD,
        [
            Change(field=ChangeField.ENTITY_NAME, new_value="北京新示例科技有限公司"),
            Change(field=ChangeField.ENTITY_ADDRESS, new_value="北京市朝阳区"),
            Change(field=ChangeField.ENTITY_TYPE, new_value="government"),
            Change(field=ChangeField.ENTITY_PERSON_IN_CHARGE, new_person=new_boss),
            Change(field=ChangeField.CONTACT_EMAIL, new_value="boss@example.cn"),
        ],
    )
    assert changed.entity.name == "北京新示例科技有限公司"
    assert changed.entity.address == "北京市朝阳区"
    assert changed.entity.entity_type is EntityType.GOVERNMENT
    assert changed.entity.person_in_charge == new_boss.model_copy(update={"email": "boss@example.cn"})
    assert RECORD.entity.name == "北京示例科技有限公司"  # pure: the input is unchanged


def test_apply_changes_updates_a_service_by_its_filing_number() -> None:
    app = "京ICP备12345678号-2A"
    changed = apply_changes(
        RECORD,
        [
            Change(field=ChangeField.SERVICE_PLATFORMS, service=app, new_value="android, ios；harmonyos"),
            Change(field=ChangeField.SERVICE_IP, service=WEBSITE_NUMBER, new_value="198.51.100.1 198.51.100.2"),
            Change(field=ChangeField.CONTACT_MOBILE, service=app, new_value="13500135000"),
        ],
    )
    app_service, website = changed.service(app), changed.service(WEBSITE_NUMBER)
    assert app_service is not None and website is not None
    assert app_service.platforms == ["android", "ios", "harmonyos"]
    assert app_service.person_in_charge.mobile == "13500135000"
    assert website.ip_addresses == ["198.51.100.1", "198.51.100.2"]
    assert website.person_in_charge.mobile == "13800138000"  # the website's person is someone else's role


def test_an_id_card_renewal_reaches_every_role_the_person_holds() -> None:
    changed = apply_changes(RECORD, [Change(field=ChangeField.ID_CARD_RENEWAL, new_value="2045-06-30")])
    website, app = changed.service(WEBSITE_NUMBER), changed.service("京ICP备12345678号-2A")
    assert website is not None and app is not None
    assert changed.entity.person_in_charge.id_valid_until == date(2045, 6, 30)
    assert website.person_in_charge.id_valid_until == date(2045, 6, 30)  # 张三 again
    assert app.person_in_charge.id_valid_until == date(2030, 1, 1)  # 李四 is not renewed


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        (Change(field=ChangeField.PROVINCE, new_value="shanghai"), "R-PROV-1"),
        (Change(field=ChangeField.DOMAIN_CHANGE, service=WEBSITE_NUMBER, new_value="x.cn"), "R-DOM-1"),
        (Change(field=ChangeField.DOMAIN_DELETE, service="京ICP备12345678号-2A", new_value="x.cn"), None),
        (Change(field=ChangeField.SERVICE_NAME, service="京ICP备12345678号-9", new_value="x"), None),
        (Change(field=ChangeField.ENTITY_NAME), None),
    ],
)
def test_apply_changes_refuses_what_the_domain_forbids_or_what_lacks_a_value(change: Change, rule: str | None) -> None:
    with pytest.raises(ChangeNotApplicable) as raised:
        apply_changes(RECORD, [change])
    assert raised.value.rule_id == rule


def test_the_last_domain_of_a_website_cannot_be_deleted() -> None:
    delete = Change(field=ChangeField.DOMAIN_DELETE, service=WEBSITE_NUMBER, new_value="example.cn")
    once = apply_changes(RECORD, [delete.model_copy(update={"new_value": "example.com.cn"})])
    with pytest.raises(ChangeNotApplicable) as raised:
        apply_changes(once, [delete])
    assert raised.value.rule_id == "R-DOM-2"


# -- archived documents and reuse --------------------------------------------------------------------------------


async def archive(
    records: RecordActivities, order_id: str, approved_at: datetime, docs: dict[str, DocumentRef]
) -> None:
    await run(
        records.archive_documents,
        ArchiveDocuments(
            order_id=order_id, entity_filing_number=ENTITY_NUMBER, approved_at=approved_at, documents=docs
        ),
    )


async def reusable(records: RecordActivities, as_of: datetime) -> dict[str, DocumentRef]:
    found = await run(
        records.find_reusable_documents, ReusableDocumentsQuery(entity_filing_number=ENTITY_NUMBER, as_of=as_of)
    )
    return found.documents  # type: ignore[attr-defined,no-any-return]


async def test_documents_approved_within_three_years_are_reusable_newest_first(records: RecordActivities) -> None:
    await archive(records, "ord-old", T0, {"id_card_front:entity": ref(1), "business_licence:entity": ref(2)})
    await archive(records, "ord-new", T0 + timedelta(days=400), {"id_card_front:entity": ref(3)})
    await archive(records, "ord-new", T0 + timedelta(days=400), {"id_card_front:entity": ref(3)})  # idempotent
    found = await reusable(records, T0 + timedelta(days=3 * 365 - 1))
    assert found == {"id_card_front:entity": ref(3), "business_licence:entity": ref(2)}


async def test_documents_older_than_three_years_are_not_reusable(records: RecordActivities) -> None:
    await archive(records, "ord-old", T0, {"id_card_front:entity": ref(1)})
    await archive(records, "ord-new", T0 + timedelta(days=400), {"business_licence:entity": ref(2)})
    found = await reusable(records, T0 + timedelta(days=3 * 365 + 1))
    assert found == {"business_licence:entity": ref(2)}
    assert await reusable(records, T0 + timedelta(days=400 + 3 * 365 + 1)) == {}


async def test_documents_are_not_reusable_after_the_filing_was_cancelled(
    records: RecordActivities, db_sessions: Sessions
) -> None:
    order = place([Change(field=ChangeField.SERVICE_NAME, service=WEBSITE_NUMBER, new_value="新示例网")])
    await run(records.update_filing_record, FilingUpdate(order=order, approved_at=T0))
    await archive(records, "ord-1", T0, {"id_card_front:entity": ref(1)})
    assert await reusable(records, T0 + timedelta(days=30)) == {"id_card_front:entity": ref(1)}

    async with db_sessions() as session, session.begin():
        await session.execute(update(FilingRow).values(cancelled_at=T0 + timedelta(days=60)))
    assert await reusable(records, T0 + timedelta(days=90)) == {}


async def test_documents_of_another_filing_are_never_offered(records: RecordActivities) -> None:
    await run(
        records.archive_documents,
        ArchiveDocuments(
            order_id="ord-9",
            entity_filing_number="沪ICP备87654321号",
            approved_at=T0,
            documents={"id_card_front:entity": ref(9)},
        ),
    )
    assert await reusable(records, T0 + timedelta(days=1)) == {}


# -- the database unreachable ------------------------------------------------------------------------------------


@pytest.fixture
def unreachable_records() -> Iterator[RecordActivities]:
    """Record activities on a PostgreSQL URL whose port refuses connections (bound, not listening)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"postgresql+asyncpg://icpflow@127.0.0.1:{sock.getsockname()[1]}/icpflow"
        yield RecordActivities(session_factory(create_engine(url)))


async def test_an_unreachable_database_is_a_retryable_error_saying_what_could_not_be_done(
    unreachable_records: RecordActivities,
) -> None:
    with pytest.raises(DatabaseUnavailable, match="record transition 1 of order ord-1: the app database is unreach"):
        await run(unreachable_records.record_transition, transition(1, Stage.VALIDATION))
    with pytest.raises(DatabaseUnavailable, match="look up reusable documents"):
        await run(
            unreachable_records.find_reusable_documents,
            ReusableDocumentsQuery(entity_filing_number=ENTITY_NUMBER, as_of=T0),
        )


def test_only_connection_failures_count_as_the_database_being_unavailable() -> None:
    assert is_unavailable(ConnectionRefusedError(111, "refused"))
    assert is_unavailable(TimeoutError())
    assert not is_unavailable(ValueError("a bug, not an outage"))
    assert not is_unavailable(IntegrityError("INSERT", {}, Exception("duplicate key")))
