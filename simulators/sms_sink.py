"""A loopback SMS provider that speaks enough of Twilio's REST API for the real ``twilio`` client to send through it.

Nothing leaves the machine: messages are kept in memory and shown at ``GET /sim/messages``. The sink checks what
Twilio would refuse for us (credentials, a missing field, a ``To`` that is not a mainland mobile in E.164), with
Twilio's error codes, so failure paths can be tested against the real client.

Routes:
- ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` (form ``To``, ``From``, ``Body``; HTTP basic auth)
  → 201 message resource, or a Twilio error JSON (401 / 400).
- ``GET /sim/messages`` (optional ``?to=`` a mobile, with or without +86) → ``{"messages": [...]}``, oldest first.
- ``DELETE /sim/messages`` → ``{"deleted": n}``.

Faults, for reliability tests (set from Python; ``clear_faults`` lifts them all):
- ``fail_next(n, status, retry_after=…)`` — the next ``n`` sends get Twilio's error for ``status`` (429 code 20429
  "Too Many Requests", 500 code 20500, 503 code 20503), with a ``Retry-After`` header when given; nothing is kept.
- ``hang_next(n)`` — the next ``n`` sends are read and never answered (until ``clear_faults`` or ``stop``), so the
  client's own timeout is what ends them.
- ``invalid`` — numbers Twilio calls invalid (HTTP 400, code 21211) although they look like mainland mobiles;
  ``unreachable`` — numbers it calls not a mobile (21614).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from aiohttp import web

API_VERSION = "2010-04-01"
# Only mainland mobiles are texted in this domain; Twilio itself accepts any E.164 number, but refusing the rest
# here catches a number that was never normalised to +86 before it reaches a real provider.
MAINLAND_MOBILE_E164 = re.compile(r"^\+861[3-9]\d{9}$")


def _json_response(data: Any, status: int = 200) -> web.Response:
    # Chinese text stays readable for a person looking at the simulator with curl or a browser.
    return web.json_response(data, status=status, dumps=functools.partial(json.dumps, ensure_ascii=False))


@dataclass(frozen=True)
class SmsMessage:
    """One message the sink accepted."""

    sid: str
    account_sid: str
    to: str
    from_: str
    body: str
    date_created: datetime

    def resource(self) -> dict[str, Any]:
        """The message as Twilio's API returns it (the fields ``twilio.rest`` reads)."""
        rfc2822 = format_datetime(self.date_created, usegmt=True)
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}.json"
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": self.body,
            "date_created": rfc2822,
            "date_sent": None,
            "date_updated": rfc2822,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": self.from_,
            "messaging_service_sid": None,
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "status": "queued",
            "subresource_uris": {"media": uri.removesuffix(".json") + "/Media.json"},
            "to": self.to,
            "uri": uri,
        }


def _number_key(number: str) -> str:
    """Digits with the country code, so ``+8613800138000``, ``13800138000`` and a ``+`` that a query string
    decoded to a space all name the same phone."""
    digits = re.sub(r"\D", "", number)
    return "86" + digits if len(digits) == 11 else digits


def _twilio_error(status: int, code: int, message: str) -> web.Response:
    # Twilio's legacy error shape: twilio-python turns it into TwilioRestException(status, code, message).
    return _json_response(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status=status,
    )


# Twilio's error codes for the HTTP statuses the sink can be told to answer with.
_FAULT_CODES = {
    429: (20429, "Too Many Requests"),
    500: (20500, "Internal Server Error"),
    503: (20503, "Service Unavailable"),
}


class SmsSink:
    """The SMS sink server. ``messages`` holds every accepted message, oldest first, for the sink's lifetime
    (until ``DELETE /sim/messages``)."""

    def __init__(self, account_sid: str, auth_token: str) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.messages: list[SmsMessage] = []
        # Numbers the carrier refuses for good (Twilio 21614 "not a valid mobile number"), for fault tests.
        self.unreachable: set[str] = set()
        # Numbers Twilio calls invalid (21211) although they look like mainland mobiles, for fault tests.
        self.invalid: set[str] = set()
        # Sends answered with an injected fault (error, hang) so far: a test can tell its fault was met.
        self.fault_hits = 0
        self._fail: tuple[int, int, int | None] = (0, 500, None)  # (sends left, status, Retry-After seconds)
        self._hang = 0
        self._release: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""

    def messages_to(self, to: str) -> list[SmsMessage]:
        """Messages sent to ``to`` (E.164 or a bare 11-digit mobile), oldest first."""
        key = _number_key(to)
        return [m for m in self.messages if _number_key(m.to) == key]

    # -- faults ------------------------------------------------------------------------------------------------

    def fail_next(self, requests: int, status: int = 500, *, retry_after: int | None = None) -> None:
        """Answer the next ``requests`` sends with Twilio's error for ``status`` (429, 500 or 503), adding a
        ``Retry-After: retry_after`` header when given."""
        if status not in _FAULT_CODES:
            raise ValueError(f"status must be one of {sorted(_FAULT_CODES)}, got {status}")
        self._fail = (requests, status, retry_after)

    def hang_next(self, requests: int) -> None:
        """Read the next ``requests`` sends and never answer them (until ``clear_faults`` or ``stop``)."""
        self._hang = requests

    def clear_faults(self) -> None:
        """Lift every injected fault (``invalid`` and ``unreachable`` numbers included) and let hung sends go."""
        self._fail = (0, 500, None)
        self._hang = 0
        self.invalid.clear()
        self.unreachable.clear()
        if self._release is not None:
            self._release.set()
            self._release = None

    async def _injected_fault(self) -> web.Response | None:
        left, status, retry_after = self._fail
        if left > 0:
            self._fail = (left - 1, status, retry_after)
            self.fault_hits += 1
            code, message = _FAULT_CODES[status]
            response = _twilio_error(status, code, message)
            if retry_after is not None:
                response.headers["Retry-After"] = str(retry_after)
            return response
        if self._hang > 0:
            self._hang -= 1
            self.fault_hits += 1
            if self._release is None:
                self._release = asyncio.Event()
            await self._release.wait()
            # The client gave up long ago; nothing was sent.
            return _twilio_error(503, 20503, "Service Unavailable")
        return None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(f"/{API_VERSION}/Accounts/{{account_sid}}/Messages.json", self._create_message)
        app.router.add_get("/sim/messages", self._list_messages)
        app.router.add_delete("/sim/messages", self._clear_messages)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on ``host:port`` (0 picks a free port); ``url`` is then e.g. ``http://127.0.0.1:8304``.
        Raises ``OSError`` when the port is taken."""
        runner = web.AppRunner(self.app())
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        self.url = f"http://{bound_host}:{bound_port}"

    async def stop(self) -> None:
        if self._release is not None:  # hung requests must end, or the server waits for them
            self._release.set()
            self._release = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _authorised(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            username, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return (
            # On bytes: compare_digest refuses non-ASCII str.
            hmac.compare_digest(username.encode(), self.account_sid.encode())
            and hmac.compare_digest(password.encode(), self.auth_token.encode())
            and request.match_info["account_sid"] == self.account_sid
        )

    async def _create_message(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return _twilio_error(401, 20003, "Authenticate")
        form = await request.post()
        to, from_, body = (str(form.get(field, "")).strip() for field in ("To", "From", "Body"))
        if not to:
            return _twilio_error(400, 21604, "A 'To' phone number is required.")
        if not from_:
            return _twilio_error(400, 21603, "A 'From' phone number is required.")
        if not body:
            return _twilio_error(400, 21602, "Message body is required.")
        fault = await self._injected_fault()
        if fault is not None:
            return fault
        if not MAINLAND_MOBILE_E164.match(to) or _number_key(to) in {_number_key(n) for n in self.invalid}:
            return _twilio_error(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if _number_key(to) in {_number_key(n) for n in self.unreachable}:
            return _twilio_error(400, 21614, f"'To' number {to} is not a valid mobile number")
        message = SmsMessage(
            sid="SM" + secrets.token_hex(16),
            account_sid=self.account_sid,
            to=to,
            from_=from_,
            body=body,
            date_created=datetime.now(UTC).replace(microsecond=0),
        )
        self.messages.append(message)
        return _json_response(message.resource(), status=201)

    async def _list_messages(self, request: web.Request) -> web.Response:
        to = request.query.get("to")
        shown = self.messages if to is None else self.messages_to(to)
        return _json_response({"messages": [m.resource() for m in shown]})

    async def _clear_messages(self, request: web.Request) -> web.Response:
        deleted = len(self.messages)
        self.messages.clear()
        return _json_response({"deleted": deleted})
