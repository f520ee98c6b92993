"""The database under the read model, audit trail and outbox dies mid-order (a PostgreSQL cluster of the test's
own, stopped with ``pg_ctl stop -m immediate``): the order waits, shows that it waits on the database, support is
alerted, and once the database is back the order completes and the read model holds every transition."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from temporalio.testing import WorkflowEnvironment

from models.order import ChangeField
from models.stages import Stage, Status
from store import db, queries
from store.tables import OutboxRow
from tests.conftest import Stack
from tests.reliability.faults_postgres import postgres_cluster, unavailable_reason
from tests.reliability.faults_stack import fault_stack
from tests.workflows.driver import new_order

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(unavailable_reason() is not None, reason=unavailable_reason() or ""),
]


async def test_database_dying_mid_order_is_waited_out_visibly_and_the_read_model_catches_up(
    temporal_env: WorkflowEnvironment, stack: Stack
) -> None:
    async with postgres_cluster() as pg:
        await db.upgrade(pg.url)
        async with fault_stack(temporal_env, stack, database_url=pg.url) as faults:
            order = new_order(changes=[ChangeField.SERVICE_PERSON_IN_CHARGE])
            order_id, email = order.order_id, order.contact_person().email
            await faults.driver.place(order)
            await faults.driver.until_stage(order_id, Stage.DOCUMENT_COLLECTION)
            await faults.delivered_once(order_id, email, "document collection")

            await pg.stop("immediate")
            try:
                await faults.driver.upload_missing(order_id)  # the applicant goes on; the order's next write fails
                state, wait = await faults.wait_shown(order_id, "record_transition")
                assert wait.dependency == "database"
                assert "the app database is unreachable" in wait.last_error, wait.last_error
                assert state.stage is Stage.AUTHENTICITY_VERIFICATION and state.status is Status.ACTIVE
                alerted = await faults.driver.until_dependency_alerted(order_id, "record_transition")
                assert alerted.since == wait.since
                # Support hears of it while the database is still down: the alert does not need the outbox.
                assert len(faults.support_alerts("dependency-down-database", order_id)) == 1
            finally:
                await pg.start()

            await faults.recovered(order_id, lambda s: s.stage is Stage.CONFIRMATION, "confirmation")
            await faults.delivered_once(order_id, email, "confirmation")
            assert (await faults.driver.state(order_id)).dependency_waits == []
            await faults.driver.confirm(order_id)
            await faults.driver.review(order_id)
            await faults.driver.enter_code(order_id)
            await faults.driver.until_stage(order_id, Stage.ADMINISTRATION_REVIEW)
            await faults.driver.decide(order_id, approved=True)
            await faults.driver.skip(order_id, order.timing.review_poll_interval)
            done = await faults.driver.until_stage(order_id, Stage.COMPLETED)
            await faults.delivered_once(order_id, email, "completed")
            assert len(faults.support_alerts("dependency-down-database", order_id)) == 1

        engine = db.create_engine(pg.url)
        try:
            async with db.session_factory(engine)() as session:
                row = await queries.get_order(session, order_id)
                timeline = await queries.order_timeline(session, order_id)
                notices = await session.scalar(
                    select(func.count()).select_from(OutboxRow).where(OutboxRow.order_id == order_id)
                )
                unsent = await session.scalar(
                    select(func.count())
                    .select_from(OutboxRow)
                    .where(OutboxRow.order_id == order_id, OutboxRow.status != "sent", OutboxRow.channel == "email")
                )
        finally:
            await engine.dispose()
    assert row is not None and (row.stage, row.status) == (Stage.COMPLETED, Status.APPROVED)
    assert row.last_seq == len(done.timeline)
    assert [t.seq for t in timeline] == [t.seq for t in done.timeline]
    assert [t.stage for t in timeline] == [t.stage for t in done.timeline]
    assert notices and unsent == 0
