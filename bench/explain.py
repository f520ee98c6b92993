"""The plan of a statement, as the database will run it: ``EXPLAIN (ANALYZE, BUFFERS)`` on PostgreSQL (the plan
with the time and rows of each node, so the statement really runs), ``EXPLAIN QUERY PLAN`` on SQLite.

The statement goes through SQLAlchemy like any other (same compilation, same bound parameters and type
processing), so the plan is the plan of the query the API runs, not of a hand-written copy of it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ClauseElement, Executable


class Explain(Executable, ClauseElement):
    inherit_cache = False

    def __init__(self, statement: Executable) -> None:
        self.statement = statement


@compiles(Explain, "postgresql")
def _explain_postgresql(element: Explain, compiler: Any, **kw: Any) -> str:
    return "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + str(compiler.process(element.statement, **kw))


@compiles(Explain, "sqlite")
def _explain_sqlite(element: Explain, compiler: Any, **kw: Any) -> str:
    return "EXPLAIN QUERY PLAN " + str(compiler.process(element.statement, **kw))


async def plan(session: AsyncSession, statement: Executable) -> list[str]:
    """The plan's lines (SQLite's tree drawn with indentation, as the ``sqlite3`` shell does)."""
    rows = (await session.execute(Explain(statement))).all()
    if session.get_bind().dialect.name == "postgresql":
        return [row[0] for row in rows]
    depth: dict[int, int] = {0: -1}
    lines = []
    for node, parent, _, detail in rows:
        depth[node] = depth.get(parent, -1) + 1
        lines.append("  " * depth[node] + detail)
    return lines


def scans_whole_table(lines: list[str]) -> bool:
    """Whether the plan reads the orders or events table from end to end rather than through an index."""
    return any(
        "Seq Scan on orders" in line or "Seq Scan on order_events" in line or line.strip() in {"SCAN orders"}
        for line in lines
    )
