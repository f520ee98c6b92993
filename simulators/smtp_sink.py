"""A loopback SMTP server that keeps every mail it receives, plus a JSON view so a person can read them.

The SMTP server runs in the caller's event loop (not aiosmtpd's threaded ``Controller``), so ``start``/``stop``
are plain awaits and tests see a message as soon as the client's send returns.

HTTP view (optional, see ``start``):
- ``GET /sim/mail`` (optional ``?to=`` an address) → ``{"mail": [...]}``, oldest first.
- ``DELETE /sim/mail`` → ``{"deleted": n}``.

Faults, for reliability tests (attributes set from Python; ``clear_faults`` lifts them all), each answered the way
a real mail server does, so the client meets them through its own SMTP dialogue:
- ``greeting_reply`` (e.g. ``"421 4.3.2 Service not available"``) — every new connection gets this reply instead
  of the 220 greeting and is closed;
- ``rcpt_reply`` (``"451 4.3.0 …"``, ``"550 5.1.1 …"``) — every ``RCPT TO`` is answered with it;
- ``data_reply`` (``"451 …"``, ``"554 5.7.1 …"``) — the message is read, answered with it, and not kept;
- ``hang`` — connections are accepted and never answered (the client's timeout ends them);
- ``stop()`` then ``start(port=sink.port)`` — connections are refused meanwhile.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import functools
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any, cast

from aiohttp import web
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

SMTP_HOSTNAME = "smtp-sink.icpflow.local"


def _json_response(data: Any, status: int = 200) -> web.Response:
    # Chinese text stays readable for a person looking at the simulator with curl or a browser.
    return web.json_response(data, status=status, dumps=functools.partial(json.dumps, ensure_ascii=False))


@dataclass(frozen=True)
class ReceivedMail:
    """One mail as delivered: the envelope (who the server was told) and the parsed message (what it says)."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage = field(repr=False)
    received_at: datetime

    @property
    def subject(self) -> str:
        return str(self.message.get("Subject", ""))

    @property
    def body(self) -> str:
        """The text/plain part (or the HTML one when there is no plain text), decoded; "" if neither exists."""
        part = self.message.get_body(preferencelist=("plain", "html"))
        return cast(str, part.get_content()) if part is not None else ""

    def to_json(self) -> dict[str, Any]:
        return {
            "from": self.mail_from,
            "to": self.rcpt_tos,
            "subject": self.subject,
            "body": self.body,
            "headers": {k: str(v) for k, v in self.message.items()},
            "received_at": self.received_at.isoformat(),
        }


class _Handler:
    """aiosmtpd handler: parse and keep each mail, or answer with the sink's injected fault."""

    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink
        self._inbox = sink.messages

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if self._sink.rcpt_reply is not None:
            self._sink.fault_hits += 1
            return self._sink.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self._sink.data_reply is not None:
            self._sink.fault_hits += 1
            return self._sink.data_reply
        content = envelope.original_content or b""
        message = email.message_from_bytes(content, policy=email.policy.default)
        self._inbox.append(
            ReceivedMail(
                mail_from=envelope.mail_from or "",
                rcpt_tos=list(envelope.rcpt_tos),
                message=message,
                received_at=datetime.now(UTC),
            )
        )
        return "250 Message accepted for delivery"


class _Refusing(asyncio.Protocol):
    """Answers a new connection with ``reply`` instead of the greeting and closes it (RFC 5321 §3.1, e.g. 421)."""

    def __init__(self, reply: str) -> None:
        self._reply = reply

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(self._reply.encode() + b"\r\n")
        transport.close()


class _Silent(asyncio.Protocol):
    """Accepts the connection and says nothing, ever: a relay that hangs."""

    def __init__(self, open_connections: set[asyncio.BaseTransport]) -> None:
        self._open = open_connections
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._open.add(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._open.discard(self._transport)


def _accept_any_login(*_: object) -> AuthResult:
    # Settings may carry SMTP credentials meant for a real relay; the sink accepts them all so the same
    # configuration works locally.
    return AuthResult(success=True)


class SmtpSink:
    """The SMTP sink. ``messages`` holds every received mail, oldest first, until ``DELETE /sim/mail``."""

    def __init__(self) -> None:
        self.messages: list[ReceivedMail] = []
        self.host = ""
        self.port = 0
        self.view_url: str | None = None
        self._server: asyncio.Server | None = None
        self._view: web.AppRunner | None = None
        # Injected faults (see the module docstring).
        self.greeting_reply: str | None = None
        self.rcpt_reply: str | None = None
        self.data_reply: str | None = None
        self.hang = False
        # Connections or commands answered with an injected fault so far: a test can tell its fault was met.
        self.fault_hits = 0
        self._hung: set[asyncio.BaseTransport] = set()

    def clear_faults(self) -> None:
        """Lift every injected fault and drop the connections left hanging."""
        self.greeting_reply = self.rcpt_reply = self.data_reply = None
        self.hang = False
        self._drop_hung()

    def _drop_hung(self) -> None:
        for transport in list(self._hung):
            transport.close()
        self._hung.clear()

    def _protocol(self, handler: _Handler) -> asyncio.BaseProtocol:
        if self.hang:
            self.fault_hits += 1
            return _Silent(self._hung)
        if self.greeting_reply is not None:
            self.fault_hits += 1
            return _Refusing(self.greeting_reply)
        return SMTP(
            handler,
            hostname=SMTP_HOSTNAME,  # the default asks DNS for the machine's FQDN, which can stall
            enable_SMTPUTF8=True,  # Chinese addresses and subjects
            authenticator=_accept_any_login,
            auth_require_tls=False,
        )

    def messages_to(self, address: str) -> list[ReceivedMail]:
        wanted = address.lower()
        return [m for m in self.messages if wanted in (r.lower() for r in m.rcpt_tos)]

    async def start(self, host: str = "127.0.0.1", port: int = 0, view_port: int | None = None) -> None:
        """Listen for SMTP on ``host:port`` (0 picks a free port, then read ``.port``). With ``view_port`` the JSON
        view also listens (0 picks a free port; ``view_url`` tells where). Raises ``OSError`` when a port is
        taken, leaving nothing running."""
        loop = asyncio.get_running_loop()
        handler = _Handler(self)
        server = await loop.create_server(lambda: self._protocol(handler), host, port)
        self._server = server
        self.host = host
        self.port = server.sockets[0].getsockname()[1]
        if view_port is not None:
            try:
                await self.start_view(host, view_port)
            except OSError:
                await self.stop()
                raise

    async def stop(self) -> None:
        if self._view is not None:
            await self._view.cleanup()
            self._view = None
            self.view_url = None
        self._drop_hung()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def start_view(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Serve the JSON mail view on ``host:port`` (0 picks a free port); ``view_url`` tells where. ``stop``
        stops it too. Raises ``OSError`` when the port is taken."""
        app = web.Application()
        app.router.add_get("/sim/mail", self._list_mail)
        app.router.add_delete("/sim/mail", self._clear_mail)
        runner = web.AppRunner(app)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError:
            await runner.cleanup()
            raise
        self._view = runner
        bound_host, bound_port = runner.addresses[0][:2]
        self.view_url = f"http://{bound_host}:{bound_port}"

    async def _list_mail(self, request: web.Request) -> web.Response:
        to = request.query.get("to")
        shown = self.messages if to is None else self.messages_to(to)
        return _json_response({"mail": [m.to_json() for m in shown]})

    async def _clear_mail(self, request: web.Request) -> web.Response:
        deleted = len(self.messages)
        self.messages.clear()
        return _json_response({"deleted": deleted})
