"""Record activities: the read model and audit trail, the filing record on approval, and archived documents.

Every write is an upsert keyed so that running an activity twice (Temporal retries, a worker dying after the
commit) changes nothing the second time. The database being down or dropping the connection raises the retryable
``DatabaseUnavailable`` (store/db.py) saying what could not be done, so an order waiting it out shows why.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from models.activity_io import (
    ArchiveDocuments,
    FilingUpdate,
    OrderRecord,
    ReusableDocuments,
    ReusableDocumentsQuery,
)
from models.changes import ChangeNotApplicable, apply_changes
from models.documents import DocumentRef
from models.order import FilingRecord
from store.db import reaching, upsert_insert
from store.tables import ArchivedDocumentRow, FilingRow, archived_documents, filings, order_events
from store.writes import current_row, upsert_current

Sessions = async_sessionmaker[AsyncSession]


class RecordActivities:
    """Activities writing the app database. ``filing_reader`` is where the provider's other systems read filings
    from (a replica, say); the filing update is confirmed there. It defaults to ``session_factory``."""

    def __init__(self, session_factory: Sessions, *, filing_reader: Sessions | None = None) -> None:
        self._sessions = session_factory
        self._filing_reader = filing_reader or session_factory

    def activities(self) -> list[Callable[..., Any]]:
        return [
            self.record_transition,
            self.update_filing_record,
            self.archive_documents,
            self.find_reusable_documents,
        ]

    @activity.defn(name="record_transition")
    async def record_transition(self, record: OrderRecord) -> None:
        """Write one transition: the order's current row and its audit-trail event ``(order_id, seq)``.

        Idempotent: the same ``seq`` twice inserts nothing and updates nothing. The current row only moves
        forward: a transition older than the row's ``last_seq`` (a late retry) is kept in the audit trail but
        does not overwrite the newer row.
        """
        event = {
            "order_id": record.order_id,
            "seq": record.seq,
            "at": record.at,
            "stage": record.stage.value,
            "status": record.status.value,
            "actor": record.actor.value,
            "actor_name": record.actor_name,
            "reason": record.reason,
        }
        async with reaching(f"record transition {record.seq} of order {record.order_id}"):
            await self._record(current_row(record), event)

    async def _record(self, current: dict[str, Any], event: dict[str, Any]) -> None:
        async with self._sessions() as session, session.begin():
            await upsert_current(session, current)
            insert_event = upsert_insert(session, order_events).values(event)
            await session.execute(
                insert_event.on_conflict_do_nothing(index_elements=[order_events.c.order_id, order_events.c.seq])
            )

    @activity.defn(name="update_filing_record")
    async def update_filing_record(self, update: FilingUpdate) -> None:
        """Apply the approved order's changes to its filing on record, then confirm the update is visible.

        Raises a retryable ``ApplicationError`` (type ``FilingUpdateNotVisible``) while the filing as read back
        does not show the update: the workflow retries until it does (DOMAIN.md). A change that cannot be
        applied raises a non-retryable ``ChangeNotApplicable`` error: retrying would not help. The write is
        keyed by the filing and guarded by the approval instant, so a late retry never undoes a newer approval.
        """
        order = update.order
        try:
            expected = apply_changes(order.record, order.changes)
        except ChangeNotApplicable as e:
            raise ApplicationError(str(e), type="ChangeNotApplicable", non_retryable=True) from e
        key = order.entity_filing_number
        row = {
            "entity_filing_number": key,
            "province": expected.province.value,
            "record_json": expected.model_dump_json(),
            "updated_by_order": order.order_id,
            "updated_at": update.approved_at,
        }
        async with reaching(f"update filing {key}"):
            async with self._sessions() as session, session.begin():
                upsert = upsert_insert(session, filings).values(row)
                await session.execute(
                    upsert.on_conflict_do_update(
                        index_elements=[filings.c.entity_filing_number],
                        set_={name: upsert.excluded[name] for name in row if name != "entity_filing_number"},
                        where=filings.c.updated_at <= upsert.excluded.updated_at,
                    )
                )
            async with self._filing_reader() as session:
                stored = await session.get(FilingRow, key)
        if stored is not None and stored.updated_at > update.approved_at:
            activity.logger.warning(
                "filing %s was updated by a later approval (order %s); order %s's update is superseded",
                key,
                stored.updated_by_order,
                order.order_id,
            )
            return
        if (
            stored is None
            or stored.updated_by_order != order.order_id
            or FilingRecord.model_validate_json(stored.record_json) != expected
        ):
            raise ApplicationError(
                f"the update of filing {key} by order {order.order_id} is not visible yet",
                type="FilingUpdateNotVisible",
            )

    @activity.defn(name="archive_documents")
    async def archive_documents(self, archive: ArchiveDocuments) -> None:
        """Keep the approved order's documents for reuse by later orders of the same filing. Idempotent."""
        if not archive.documents:
            return
        rows = [
            {
                "entity_filing_number": archive.entity_filing_number,
                "key": key,
                "order_id": archive.order_id,
                "uri": ref.uri,
                "sha256": ref.sha256,
                "size": ref.size,
                "content_type": ref.content_type,
                "filename": ref.filename,
                "approved_at": archive.approved_at,
            }
            for key, ref in sorted(archive.documents.items())
        ]
        where = f"archive the documents of order {archive.order_id}"
        async with reaching(where), self._sessions() as session, session.begin():
            insert = upsert_insert(session, archived_documents).values(rows)
            await session.execute(insert.on_conflict_do_nothing())

    @activity.defn(name="find_reusable_documents")
    async def find_reusable_documents(self, query: ReusableDocumentsQuery) -> ReusableDocuments:
        """Documents of the filing's orders approved within ``window_days`` before ``as_of``, the newest per key.

        None approved before a cancellation of the filing is offered (DOMAIN.md: never after a cancellation).
        """
        since = query.as_of - timedelta(days=query.window_days)
        doc = ArchivedDocumentRow
        stmt = (
            select(doc)
            .outerjoin(FilingRow, FilingRow.entity_filing_number == doc.entity_filing_number)
            .where(
                doc.entity_filing_number == query.entity_filing_number,
                doc.approved_at >= since,
                doc.approved_at <= query.as_of,
                or_(FilingRow.cancelled_at.is_(None), FilingRow.cancelled_at < doc.approved_at),
            )
            .order_by(doc.approved_at.desc(), doc.order_id.desc())
        )
        found: dict[str, DocumentRef] = {}
        async with reaching("look up reusable documents"), self._sessions() as session:
            for row in await session.scalars(stmt):
                found.setdefault(
                    row.key,
                    DocumentRef(
                        uri=row.uri,
                        sha256=row.sha256,
                        size=row.size,
                        content_type=row.content_type,
                        filename=row.filename,
                    ),
                )
        return ReusableDocuments(documents=found)
