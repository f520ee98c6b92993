"""What every request handler needs, built once per app: the client facade, the read model, the document store."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from starter.api.config import ApiSettings
from starter.api.errors import ApiError
from starter.api.single_flight import SingleFlight
from starter.client import OrderClient
from store.documents import LocalDocumentStore


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


def get_context(request: Request) -> ApiContext:
    """A dependency: the app's context, or 503 while the app is still connecting (before its lifespan started)."""
    ctx: ApiContext | None = getattr(request.app.state, "ctx", None)
    if ctx is None:
        raise ApiError(503, "starting", "the API is still connecting to Temporal and the database; retry shortly")
    return ctx
