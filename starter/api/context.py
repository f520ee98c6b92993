"""What every request handler needs, built once per app: the client facade, the read model, the document store."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import RPCTimeoutOrCancelledError

from starter.api.config import ApiSettings
from starter.api.errors import ApiError
from starter.api.single_flight import SingleFlight
from starter.client import OrderClient
from store.documents import LocalDocumentStore

T = TypeVar("T")


@dataclass
class ApiContext:
    settings: ApiSettings
    orders: OrderClient
    sessions: async_sessionmaker[AsyncSession]
    documents: LocalDocumentStore = field(init=False)
    # Placements running in this process, by order id (see starter.api.orders).
    placements: SingleFlight[Any] = field(default_factory=SingleFlight)

    def __post_init__(self) -> None:
        self.documents = LocalDocumentStore(self.settings.document_store_path)

    async def act(self, action: Awaitable[T]) -> T:
        """An action on an order (a workflow update), bounded in time: an update waits for a worker, and a request
        must not hang while none is running. 504 when it takes too long; the update may still apply later."""
        limit = self.settings.action_timeout_seconds
        try:
            return await asyncio.wait_for(action, limit)
        except (TimeoutError, RPCTimeoutOrCancelledError):
            # At the limit wait_for cancels the action; an update already waiting at the server then raises the
            # Temporal client's RPCTimeoutOrCancelledError instead of CancelledError (as it does when the server
            # ends the wait on a deadline of its own). Either way the order did not answer in time.
            raise ApiError(
                504,
                "action_timeout",
                f"the order did not answer within {limit:g} s (is an icpflow worker running?); the action may "
                "still be applied: read the order before trying again",
            ) from None


def get_context(request: Request) -> ApiContext:
    """A dependency: the app's context, or 503 while the app is still connecting (before its lifespan started)."""
    ctx: ApiContext | None = getattr(request.app.state, "ctx", None)
    if ctx is None:
        raise ApiError(503, "starting", "the API is still connecting to Temporal and the database; retry shortly")
    return ctx
