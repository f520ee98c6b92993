"""Concurrent identical calls in one process share one execution: placing the same order twice at once must not
start it twice (across processes, Temporal's one workflow id per filing lets exactly one start win)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class TagMismatch(Exception):
    """A call for the same key but another tag (the same order id for another filing) is already running."""

    def __init__(self, running_tag: str) -> None:
        super().__init__(running_tag)
        self.running_tag = running_tag


class SingleFlight(Generic[T]):
    def __init__(self) -> None:
        self._running: dict[str, tuple[str, asyncio.Future[T]]] = {}

    async def run(self, key: str, tag: str, start: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """``start()``'s result, and whether this call ran it (False: it joined a call already running for
        ``key``). Raises :class:`TagMismatch` when the running call has another ``tag``."""
        running = self._running.get(key)
        if running is not None:
            running_tag, future = running
            if running_tag != tag:
                raise TagMismatch(running_tag)
            return await asyncio.shield(future), False
        future = asyncio.ensure_future(start())
        self._running[key] = (tag, future)
        future.add_done_callback(lambda f: self._finished(key, f))
        # Shielded: a caller that goes away does not cancel the call the others are waiting for.
        return await asyncio.shield(future), True

    def _finished(self, key: str, future: asyncio.Future[Any]) -> None:
        self._running.pop(key, None)
        if not future.cancelled():
            future.exception()  # retrieved here, so an error nobody waited for is not reported as lost
