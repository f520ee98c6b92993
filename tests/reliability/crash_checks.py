"""What must hold after a crash: every notice delivered once (twice at most inside the documented at-least-once
window), one submission and one verification code per order, and the read model equal to the workflow's state.

Deliveries are counted where they arrive — the SMTP and SMS sinks — not in the outbox that claims to have sent them.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench.rig import Outside
from models.order import PlaceOrder
from models.state import OrderState
from simulators.regulator import SMS_FROM
from store import queries
from store.tables import OutboxRow

if TYPE_CHECKING:
    from tests.reliability.crash_rig import CrashWorker

# How late the test may notice a worker's death after it happened (the supervisor looks every 0.2 s; CI is busy).
DEATH_NOTICED_WITHIN_S = 3.0


@dataclass
class Duplicate:
    order_id: str
    event_key: str
    channel: str
    first_at: float  # when the sink received the first copy
    committed_at: float  # when the outbox row was finally marked sent (after the repeat)


@dataclass
class Deliveries:
    notices: int = 0  # outbox keys (order, event, channel) checked
    delivered: int = 0  # messages the sinks received for them
    duplicates: list[Duplicate] = field(default_factory=list)


@dataclass
class _Copy:
    at: float
    body: str
    sid: str = ""


async def check_deliveries(
    sessions: async_sessionmaker[AsyncSession],
    outside: Outside,
    orders: Iterable[PlaceOrder],
    worker: CrashWorker,
) -> Deliveries:
    """Every outbox key was sent and reached its sink exactly once, or twice only inside the documented
    at-least-once window: the key was marked sent once (by the attempt that repeated it: the first attempt never
    committed) and a worker died between the first copy's arrival and that commit. Nothing reached a sink without
    an outbox row.

    The worker's ``settles`` are its records of each ``sent`` commit, ``deaths`` the wall-clock times the test
    noticed it dead. A row sent with no ``settles`` line was committed by a worker that began the commit (its
    ``settling`` line) and was killed before writing the line (another point's kill, landing between the two):
    that commit is dated by the death of that process."""
    deaths = worker.deaths
    orders = list(orders)
    ids = {o.order_id for o in orders}
    async with sessions() as session:
        rows = (await session.scalars(select(OutboxRow).where(OutboxRow.order_id.in_(ids)))).all()
    unsent = [(r.order_id, r.event_key, r.channel, r.status) for r in rows if r.status != "sent"]
    assert not unsent, f"notices never sent: {unsent}"
    commits: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
    for s in worker.settles():
        commits.setdefault((s["order_id"], s["event_key"], s["channel"]), []).append(s)
    for s in worker.settling():
        started = (s["order_id"], s["event_key"], s["channel"])
        death = worker.died.get(s["pid"])
        if started not in commits and death is not None:
            commits[started] = [{**s, "committed": death}]

    emails: dict[tuple[str, str], list[_Copy]] = {}
    for m in list(outside.smtp.messages):
        sent = (str(m.message.get("X-Icpflow-Order", "")), str(m.message.get("X-Icpflow-Event", "")))
        if sent[0] in ids:
            emails.setdefault(sent, []).append(_Copy(m.received_at.timestamp(), m.subject))
    texts: dict[str, list[_Copy]] = {}
    for o in orders:
        texts[o.order_id] = [
            _Copy(m.date_created.timestamp(), m.body, m.sid)
            for m in outside.sms.messages_to(o.contact_person().mobile)
            if SMS_FROM not in m.from_
        ]

    report = Deliveries(notices=len(rows))
    accounted: Counter[str] = Counter()
    for r in rows:
        key: tuple[str, str, str] = (r.order_id, r.event_key, r.channel)
        committed = commits.get(key, [])
        assert committed, f"{key}: the outbox says sent but no worker recorded committing it"
        if r.channel == "email":
            copies = emails.pop((r.order_id, r.event_key), [])
        else:
            sids = {c["provider_id"] for c in committed}
            bodies = {c.body for c in texts[r.order_id] if c.sid in sids}
            copies = [c for c in texts[r.order_id] if c.body in bodies]
            accounted[r.order_id] += len(copies)
        report.delivered += len(copies)
        assert copies, f"{key}: marked sent but never reached the sink"
        if len(copies) == 1:
            continue
        first, commit = copies[0].at, committed[-1]["committed"]
        # An SMS's arrival is known to the second only (the sink's date_created).
        slack = 1.0 if r.channel == "sms" else 0.0
        inside = any(first - slack <= d and d - DEATH_NOTICED_WITHIN_S <= commit for d in deaths)
        assert len(copies) == 2 and len(committed) == 1 and inside, (
            f"{key}: delivered {len(copies)} times, committed {len(committed)} times, "
            f"first copy at {first:.3f}, commit at {commit:.3f}, worker deaths at {deaths}: "
            "a duplicate outside the at-least-once window"
        )
        report.duplicates.append(Duplicate(r.order_id, r.event_key, r.channel, first_at=first, committed_at=commit))
    assert not emails, f"emails without an outbox row: {sorted(emails)}"
    for o in orders:
        assert accounted[o.order_id] == len(texts[o.order_id]), (
            f"{o.order_id}: texts without an outbox row: {[c.body for c in texts[o.order_id]]}"
        )
    return report


async def check_submissions(outside: Outside, orders: Iterable[PlaceOrder]) -> None:
    """One submission per order at the administration (the idempotency key held across retries), and one
    verification code texted per order."""
    async with httpx.AsyncClient(base_url=outside.regulator.url) as http:
        response = await http.get("/sim/submissions")
        response.raise_for_status()
    per_order = Counter(s["order_id"] for s in response.json()["submissions"])
    for order in orders:
        assert per_order[order.order_id] == 1, f"{order.order_id}: {per_order[order.order_id]} submissions"
        codes = [m for m in outside.sms.messages_to(order.contact_person().mobile) if SMS_FROM in m.from_]
        assert len(codes) == 1, f"{order.order_id}: {len(codes)} verification codes texted"


async def check_read_model(sessions: async_sessionmaker[AsyncSession], finals: Mapping[str, OrderState]) -> None:
    """The read model's row and audit trail of each order say what the workflow's own state says."""
    async with sessions() as session:
        for order_id, state in finals.items():
            row = await queries.get_order(session, order_id)
            assert row is not None, f"{order_id} is missing from the read model"
            seen = (row.stage, row.status, row.waiting_on, row.overdue, row.last_seq, row.workflow_id)
            expected = (
                state.stage,
                state.status,
                state.waiting_on,
                state.overdue,
                len(state.timeline),
                state.workflow_id,
            )
            assert seen == expected, f"{order_id}: read model {seen} != workflow {expected}"
            trail = await queries.order_timeline(session, order_id)
            assert [_transition(t) for t in trail] == [_transition(t) for t in state.timeline], order_id


def _transition(t: Any) -> tuple[Any, ...]:
    return (t.seq, _instant(t.at), t.stage, t.status, t.actor, t.actor_name, t.reason)


def _instant(at: datetime) -> float:
    return round(at.timestamp(), 3)


@dataclass
class WindowStats:
    """The at-least-once window as measured: from the provider's answer to the outbox commit, per notice."""

    notices: int
    median_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, settles: Iterable[Mapping[str, Any]]) -> WindowStats:
        widths = sorted((s["committed"] - s["answered"]) * 1000 for s in settles)
        if not widths:
            return cls(0, 0.0, 0.0, 0.0)
        p99 = widths[min(len(widths) - 1, round(0.99 * (len(widths) - 1)))]
        return cls(len(widths), statistics.median(widths), p99, widths[-1])

    def __str__(self) -> str:
        return (
            f"{self.notices} notices: median {self.median_ms:.1f} ms, p99 {self.p99_ms:.1f} ms, "
            f"max {self.max_ms:.1f} ms"
        )


def email_acceptance_to_commit(outside: Outside, settles: Iterable[Mapping[str, Any]]) -> list[float]:
    """For emails, the window from the SMTP sink's acceptance of the message (its clock) to the outbox commit
    (the worker's clock, the same machine): it also covers the SMTP QUIT after the 250."""
    received: dict[tuple[str, str], float] = {}
    for m in list(outside.smtp.messages):
        key = (str(m.message.get("X-Icpflow-Order", "")), str(m.message.get("X-Icpflow-Event", "")))
        received[key] = m.received_at.timestamp()  # the last copy: the one whose commit followed
    return [
        (s["committed"] - received[(s["order_id"], s["event_key"])]) * 1000
        for s in settles
        if s["channel"] == "email" and (s["order_id"], s["event_key"]) in received
    ]
