"""The crash matrix's delivery check on its own, on hand-made records: a check that passed whatever the records
said would prove nothing about the matrix."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from types import SimpleNamespace
from typing import Any, cast

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench.rig import Outside
from models.order import PlaceOrder
from simulators.smtp_sink import ReceivedMail
from store.tables import OutboxRow, OutboxStatus
from tests.factories import make_order
from tests.reliability.crash_checks import check_deliveries
from tests.reliability.crash_rig import CrashWorker

EVENT = "stage:confirmation:4"
T0 = 1_800_000_000.0  # when the provider answered (epoch seconds)
DEAD_PID = 4242


@dataclass
class _Records:
    """What a crash worker leaves behind: its settle lines and the deaths the supervisor noticed."""

    committed: list[dict[str, Any]] = field(default_factory=list)
    begun: list[dict[str, Any]] = field(default_factory=list)
    died: dict[int, float] = field(default_factory=dict)

    @property
    def deaths(self) -> list[float]:
        return sorted(self.died.values())

    def settles(self) -> list[dict[str, Any]]:
        return self.committed

    def settling(self) -> list[dict[str, Any]]:
        return self.begun


async def _email_sent_once(sessions: async_sessionmaker[AsyncSession]) -> tuple[PlaceOrder, Outside]:
    """One order whose confirmation email the outbox marked sent and the SMTP sink received once."""
    order = make_order()
    async with sessions() as session, session.begin():
        session.add(
            OutboxRow(
                order_id=order.order_id,
                event_key=EVENT,
                channel="email",
                status=OutboxStatus.SENT.value,
                provider_id="<m1@icpflow>",
                created_at=datetime.fromtimestamp(T0 - 1, UTC),
                sent_at=datetime.fromtimestamp(T0, UTC),
            )
        )
    mail = EmailMessage()
    mail["Subject"] = "confirmed"
    mail["X-Icpflow-Order"] = order.order_id
    mail["X-Icpflow-Event"] = EVENT
    received = ReceivedMail("icpflow@example.test", ["a@example.test"], mail, datetime.fromtimestamp(T0, UTC))
    outside = SimpleNamespace(smtp=SimpleNamespace(messages=[received]), sms=SimpleNamespace(messages_to=lambda _: []))
    return order, cast(Outside, outside)


def _line(order: PlaceOrder, **more: Any) -> dict[str, Any]:
    return {"order_id": order.order_id, "event_key": EVENT, "channel": "email", "provider_id": "<m1@icpflow>"} | more


async def test_a_commit_cut_short_by_a_kill_is_dated_by_that_workers_death(
    db_sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A kill landing between the outbox commit and the worker's settle line leaves only the line written as the
    commit began: the notice counts as committed by the worker that died, not as sent by no one."""
    order, outside = await _email_sent_once(db_sessions)
    records = _Records(begun=[_line(order, pid=DEAD_PID, answered=T0)], died={DEAD_PID: T0 + 0.4})
    report = await check_deliveries(db_sessions, outside, [order], cast(CrashWorker, records))
    assert (report.notices, report.delivered, report.duplicates) == (1, 1, [])


@pytest.mark.parametrize(
    "records",
    [
        pytest.param(_Records(), id="no-line-at-all"),
        pytest.param(_Records(begun=[{"pid": DEAD_PID, "answered": T0}]), id="begun-by-a-worker-that-never-died"),
    ],
)
async def test_a_notice_sent_by_no_recorded_worker_fails_the_check(
    db_sessions: async_sessionmaker[AsyncSession], records: _Records
) -> None:
    """Without a settle line, only a begun commit of a worker seen dead explains a sent row."""
    order, outside = await _email_sent_once(db_sessions)
    records.begun = [_line(order) | r for r in records.begun]
    with pytest.raises(AssertionError, match="no worker recorded committing it"):
        await check_deliveries(db_sessions, outside, [order], cast(CrashWorker, records))


async def test_a_commit_recorded_in_full_needs_no_death(db_sessions: async_sessionmaker[AsyncSession]) -> None:
    """The ordinary case: the worker lived and wrote its settle line."""
    order, outside = await _email_sent_once(db_sessions)
    records = _Records(committed=[_line(order, pid=DEAD_PID, answered=T0, committed=T0 + 0.03)])
    report = await check_deliveries(db_sessions, outside, [order], cast(CrashWorker, records))
    assert report.delivered == 1
