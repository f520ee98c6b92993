"""The Temporal activity ``validate_order``: look up the expiry of every domain on the order over RDAP, then run
every rule. The rules themselves are pure (``validator.validate``); only the look-ups make this an activity."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

from temporalio import activity

from activities.validation.context import domains_on_order
from activities.validation.rdap import RdapClient, RdapError, RdapUnavailable
from activities.validation.validator import validate
from models.activity_io import PlacedOrder, ValidationResult

MAX_CONCURRENT_LOOKUPS = 8


class ValidationActivities:
    def __init__(self, rdap: RdapClient) -> None:
        self.rdap = rdap

    @activity.defn(name="validate_order")
    async def validate_order(self, req: PlacedOrder) -> ValidationResult:
        """Validate the order as of ``req.as_of`` (the instant the workflow saw it, so a retry judges the same
        day). An RDAP server that is down fails the activity, and Temporal retries it; a domain whose registry
        refuses the query or publishes no expiry is left out, which R-DOM-3 reports as a warning."""
        expiry = await self._expiry_dates(domains_on_order(req.order))
        return validate(req.order, req.as_of, expiry)

    async def _expiry_dates(self, domains: list[str]) -> dict[str, datetime | None]:
        limit = asyncio.Semaphore(MAX_CONCURRENT_LOOKUPS)

        async def one(domain: str) -> tuple[str, datetime | None, bool]:
            async with limit:
                try:
                    return domain, await self.rdap.expiry(domain), True
                except RdapUnavailable:
                    raise
                except RdapError as e:
                    activity.logger.warning("no expiry for %s: %s", domain, e)
                    return domain, None, False

        found = await asyncio.gather(*(one(d) for d in domains))
        return {domain: at for domain, at, known in found if known}

    async def aclose(self) -> None:
        await self.rdap.aclose()

    def activities(self) -> list[Callable[..., Any]]:
        """The bound activity callables, for the worker."""
        return [self.validate_order]
