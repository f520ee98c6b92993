"""The real Twilio client, optionally pointed at another host (the loopback SMS sink in local runs and tests).

``make_twilio_client`` is the one place that builds a Twilio client, so production and the local stack exercise
the same library code: request signing, form encoding, response parsing and ``TwilioRestException`` all come from
twilio itself; only the host the request goes to differs.
"""

from __future__ import annotations

import base64
import json
import logging
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit, urlunsplit

from twilio.base.exceptions import TwilioRestException
from twilio.http import AsyncHttpClient
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

DEFAULT_TIMEOUT_SECONDS = 10.0

# The logger twilio's own async client uses, so request logging stays configurable in one place.
_logger = logging.getLogger("twilio.async_http_client")


class TwilioRetryAfter(TwilioRestException):  # type: ignore[misc]  # twilio ships no type hints
    """Twilio asked us to slow down (429, or 503) and said when to come back: ``retry_after`` seconds.

    twilio's own ``TwilioRestException`` drops the response headers, so the Retry-After would be lost; this
    subclass keeps it, and is still caught by any ``except TwilioRestException``."""

    def __init__(self, status: int, uri: str, msg: str, code: int, method: str, retry_after: float) -> None:
        super().__init__(status, uri, msg=msg, code=code, method=method)
        self.retry_after = retry_after


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """An HTTP ``Retry-After`` value (delay in seconds or an HTTP date) as seconds from ``now``; None if absent or
    unreadable. A date in the past means "now" (0)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        at = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return max((at - (now or datetime.now(UTC))).total_seconds(), 0.0)


def _retry_after_error(method: str, url: str, response: Response) -> TwilioRetryAfter | None:
    if response.status_code not in (429, 503):
        return None
    headers = response.headers or {}
    delay = retry_after_seconds(headers.get("Retry-After"))
    if delay is None:
        return None
    try:
        body = json.loads(response.text)
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    message = str(body.get("message") or "Too Many Requests")
    code = body.get("code")
    if not isinstance(code, int):
        code = response.status_code
    return TwilioRetryAfter(response.status_code, url, message, code, method, delay)


class RoutedAsyncHttpClient(AsyncHttpClient):  # type: ignore[misc]  # twilio ships no type hints
    """An async Twilio HTTP client that sends every request to ``base_url`` instead of ``*.twilio.com``.

    The path and query of each request are kept; scheme and host (and any path prefix of ``base_url``) come from
    ``base_url``. ``base_url=None`` leaves URLs untouched, i.e. talks to the real Twilio.

    Each request runs in a fresh ``AsyncTwilioHttpClient`` used as an async context manager: twilio's client opens
    its aiohttp session in its constructor, which needs a running event loop and an explicit close. Scoping it to
    one request lets callers build the client anywhere (even outside a loop) and never close it, and no session
    leaks when a request fails. SMS volume is tiny, so the lost connection reuse does not matter.
    """

    def __init__(self, base_url: str | None, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        super().__init__(logger=_logger, is_async=True, timeout=timeout)
        self.base_url = base_url.rstrip("/") if base_url else None

    def route(self, url: str) -> str:
        """The URL a request for ``url`` is actually sent to."""
        if self.base_url is None:
            return url
        target = urlsplit(self.base_url)
        original = urlsplit(url)
        return urlunsplit(
            (target.scheme, target.netloc, target.path + original.path, original.query, original.fragment)
        )

    # twilio's base class declares ``request`` sync; async clients (``is_async=True``) define it async.
    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # the signature is twilio's
        allow_redirects: bool = False,
    ) -> Response:
        # twilio hands credentials to aiohttp's ``auth=`` parameter, which aiohttp deprecates (removed in v4, as
        # is BasicAuth); the header it would have sent is built here instead.
        headers = dict(headers or {})
        if auth is not None:
            credentials = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
            headers["Authorization"] = f"Basic {credentials}"
        # twilio's async client ignores its own constructor timeout (it passes only the per-call one to aiohttp,
        # where None means "wait forever"), so the default is applied here.
        async with AsyncTwilioHttpClient(logger=self.logger) as inner:
            response = await inner.request(
                method,
                self.route(url),
                params=params,
                data=data,
                headers=headers,
                timeout=timeout if timeout is not None else self.timeout,
                allow_redirects=allow_redirects,
            )
        self._test_only_last_response = response
        slow_down = _retry_after_error(method, url, response)
        if slow_down is not None:
            raise slow_down
        return response


def make_twilio_client(
    account_sid: str,
    auth_token: str,
    base_url: str | None,
    *,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> Client:
    """A ``twilio.rest.Client`` whose requests go to ``base_url`` (``None``: the real ``api.twilio.com``).

    The client is asynchronous: send with ``await client.messages.create_async(to=..., from_=..., body=...)``
    (the synchronous ``create`` raises, as with any twilio async client). Errors are twilio's own
    ``TwilioRestException`` (e.g. ``code == 21211`` for an invalid ``To``), or its subclass ``TwilioRetryAfter``
    when a 429/503 said when to come back (``retry_after`` seconds); connection failures and timeouts raise
    aiohttp / asyncio exceptions. Nothing needs closing.
    """
    return Client(account_sid, auth_token, http_client=RoutedAsyncHttpClient(base_url, timeout=timeout))
