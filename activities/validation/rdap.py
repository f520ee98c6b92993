"""An RDAP client for domain expiry dates (RFC 9082 queries, RFC 9083 JSON answers).

``GET {base}/domain/{name}`` and read the ``events`` array: the ``expiration`` event's ``eventDate``. A 404 means
the registry has no such domain (not registered). Server errors, rate limiting and network failures raise
:class:`RdapUnavailable` so the Temporal activity fails and is retried; any other refusal raises
:class:`RdapError`, which the activity treats as "expiry unknown" rather than failing the order.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from models.identifiers import normalise_domain
from models.order import Frozen

RDAP_MEDIA_TYPE = "application/rdap+json"


class RdapError(Exception):
    """The RDAP server refused the query or answered something unusable; retrying will not help."""


class RdapUnavailable(RdapError):
    """The RDAP server could not answer now (5xx, 429, timeout, connection failure): retry later."""


class DomainLookup(Frozen):
    """What the registry says about one domain."""

    domain: str  # as queried: the A-label form
    registered: bool
    expires_at: datetime | None = None  # None when not registered, or when the registry publishes no expiry
    registered_at: datetime | None = None
    registrant: str | None = None  # the registrant's vCard ``fn``, when the registry does not redact it


class RdapClient:
    """A small async RDAP client. One instance holds one connection pool: close it with :meth:`aclose`."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            timeout=timeout,
            follow_redirects=True,  # bootstrap services (rdap.org) redirect to the registry's server
            headers={"Accept": f"{RDAP_MEDIA_TYPE}, application/json"},
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> RdapClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def lookup(self, domain: str) -> DomainLookup:
        """Look ``domain`` up (IDNs are sent as A-labels)."""
        name = normalise_domain(domain)
        url = f"{self.base_url}/domain/{quote(name)}"
        try:
            response = await self._http.get(url)
        except httpx.TransportError as e:  # timeouts, refused connections, protocol errors
            raise RdapUnavailable(f"RDAP {url}: {type(e).__name__}: {e}") from e
        if response.status_code == 404:
            return DomainLookup(domain=name, registered=False)
        if response.status_code == 429 or response.status_code >= 500:
            raise RdapUnavailable(f"RDAP {url} answered {response.status_code}")
        if response.status_code != 200:
            raise RdapError(f"RDAP {url} answered {response.status_code}: {_error_title(response)}")
        try:
            body = response.json()
        except ValueError as e:
            raise RdapError(f"RDAP {url} answered something that is not JSON") from e
        if not isinstance(body, dict) or body.get("objectClassName", "domain") != "domain":
            raise RdapError(f"RDAP {url} did not answer a domain object")
        return DomainLookup(
            domain=name,
            registered=True,
            expires_at=event_date(body, "expiration"),
            registered_at=event_date(body, "registration"),
            registrant=registrant_name(body),
        )

    async def expiry(self, domain: str) -> datetime | None:
        """The domain's expiry instant; None when it is not registered. Raises :class:`RdapError` when the
        registry publishes no expiry date for a registered domain."""
        found = await self.lookup(domain)
        if found.registered and found.expires_at is None:
            raise RdapError(f"the registry publishes no expiration event for {found.domain}")
        return found.expires_at


def event_date(domain: dict[str, Any], action: str) -> datetime | None:
    """The ``eventDate`` of the first event with ``eventAction == action`` (RFC 9083 §4.5), timezone-aware."""
    for event in domain.get("events") or []:
        if isinstance(event, dict) and event.get("eventAction") == action and isinstance(event.get("eventDate"), str):
            try:
                at = datetime.fromisoformat(event["eventDate"])
            except ValueError as e:
                raise RdapError(f"unreadable {action} date {event['eventDate']!r}") from e
            return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return None


def registrant_name(domain: dict[str, Any]) -> str | None:
    """The ``fn`` of the entity with the ``registrant`` role (a jCard, RFC 7095), if present."""
    for entity in domain.get("entities") or []:
        if not isinstance(entity, dict) or "registrant" not in (entity.get("roles") or []):
            continue
        vcard = entity.get("vcardArray")
        if isinstance(vcard, list) and len(vcard) == 2 and isinstance(vcard[1], list):
            for prop in vcard[1]:
                if isinstance(prop, list) and len(prop) >= 4 and prop[0] == "fn" and isinstance(prop[3], str):
                    return prop[3]
    return None


def _error_title(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase
    if isinstance(body, dict):
        return str(body.get("title") or body.get("description") or response.reason_phrase)
    return response.reason_phrase
