"""Latency figures as every API scenario reports them: count, p50, p95, p99 and max, in milliseconds."""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


def summary(ms: list[float]) -> dict[str, Any]:
    if not ms:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    ordered = sorted(ms)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive") if len(ordered) > 1 else ordered * 99
    return {
        "n": len(ordered),
        "p50": round(cuts[49], 1),
        "p95": round(cuts[94], 1),
        "p99": round(cuts[98], 1),
        "max": round(ordered[-1], 1),
    }


async def timed(call: Callable[[], Awaitable[T]]) -> tuple[T, float]:
    """The call's result and how long it took, in milliseconds."""
    t = time.perf_counter()
    result = await call()
    return result, (time.perf_counter() - t) * 1000


def row_text(s: dict[str, Any]) -> str:
    return f"{s['p50']} / {s['p95']} / {s['p99']} ms"
