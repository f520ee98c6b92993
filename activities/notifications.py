"""Notification activities: email over SMTP and SMS through Twilio, each sent at most once per outbox key.

The outbox row ``(order_id, event_key, channel)`` is the memory that makes a retried activity safe:

1. *claim* — insert the row as ``pending`` if absent (one short transaction); a ``sent`` row is skipped
   (``already_sent``), a ``failed`` row was refused for good and is reported again without sending;
2. *send* — hand the message to the provider, outside any transaction;
3. *settle* — mark the row ``sent`` with the provider's id (SMTP Message-ID, Twilio SID) or ``failed``.

**The at-least-once window** lies between the provider accepting a message (step 2) and the commit of step 3:
if the worker dies or the database is unreachable right then, the row stays ``pending`` and the retry sends the
message again. The window is kept small: the settle step is a single ``UPDATE`` by primary key on a connection
checked out *before* sending, issued immediately after the provider's answer, and retried briefly in-process
before the activity gives up. Two attempts running at once (a zombie attempt past its timeout) could also both
send. A repeated email carries the same Message-ID (derived from order id and event key), so mail clients and
support recognise and collapse the duplicate; SMS has no such header, so the window matters most there.

Transient failures (connection refused, timeouts, SMTP 4xx, Twilio 429/5xx) raise so Temporal retries the
activity; channels already sent are skipped on the retry. When Twilio says when to come back (429 or 503 with
``Retry-After``), the retry is scheduled then (``next_retry_delay``, at most ``MAX_RETRY_AFTER``) instead of by
the backoff, which would only knock again too early. The outbox database being unreachable raises the retryable
``DatabaseUnavailable``; a support alert is then sent anyway, unrecorded (see ``alert_support``).

Permanent refusals (Twilio HTTP 400 such as 21211 invalid number, SMTP 5xx for the recipient or the message, a
missing address) are recorded as ``failed`` and reported in ``NotificationResult.failed``; the other channels
still go. An SMTP 5xx to the greeting or to our own sender is the relay refusing us, not this message: retried.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

import aiosmtplib
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from activities.sms_client import TwilioRetryAfter, make_twilio_client
from models.activity_io import Channel, Notification, NotificationResult, SupportAlert
from models.settings import Settings
from store.db import DatabaseUnavailable, reaching, upsert_insert
from store.tables import OutboxRow, OutboxStatus, outbox

Sessions = async_sessionmaker[AsyncSession]

# Settling a sent message is retried this often (seconds between tries) before the activity fails.
SETTLE_BACKOFF = (0.1, 0.5, 2.0)
SUPPORT_EVENT_PREFIX = "support:"
# The longest Retry-After honoured; a longer one (or a broken header) waits this long, then asks again.
MAX_RETRY_AFTER = timedelta(hours=1)
_MAINLAND_MOBILE = re.compile(r"^1[3-9]\d{9}$")


class PermanentFailure(Exception):
    """The provider refused this message for good: retrying would get the same answer."""


class RetryLater(Exception):
    """The provider refused for now and said when to come back: ``retry_after``."""

    def __init__(self, message: str, retry_after: timedelta) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class _Email:
    to: str
    subject: str
    body: str


def message_id(order_id: str, event_key: str, mail_from: str) -> str:
    """The Message-ID of the email for ``(order_id, event_key)``: the same on every attempt, so a duplicate send
    is recognisable (and collapsed by most mail clients)."""
    digest = hashlib.sha256(f"{order_id}\x00{event_key}".encode()).hexdigest()[:32]
    domain = mail_from.rpartition("@")[2] or "icpflow.local"
    return f"<icpflow.{digest}@{domain}>"


def to_e164(mobile: str) -> str:
    """A mainland mobile as Twilio wants it (``+8613800138000``); other input is passed on for Twilio to judge."""
    digits = re.sub(r"[\s-]", "", mobile)
    if _MAINLAND_MOBILE.match(digits):
        return "+86" + digits
    if digits.startswith("0086"):
        return "+" + digits[2:]
    return digits


def render_email(email: _Email, *, mail_from: str, msg_id: str, headers: dict[str, str]) -> EmailMessage:
    """A UTF-8 plain-text email with a simple HTML alternative (paragraphs from blank-line-separated blocks)."""
    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = email.to
    message["Subject"] = email.subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = msg_id
    for name, value in headers.items():
        message[name] = value
    message.set_content(email.body, charset="utf-8")
    paragraphs = "".join(
        f"<p>{html.escape(block).replace(chr(10), '<br>')}</p>" for block in re.split(r"\n\s*\n", email.body)
    )
    message.add_alternative(
        f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(email.subject)}</title></head>'
        f'<body style="font-family: sans-serif">{paragraphs}</body></html>',
        subtype="html",
        charset="utf-8",
    )
    return message


class NotificationActivities:
    """Activities that tell people things. ``sms_client`` defaults to the Twilio client from settings."""

    def __init__(self, session_factory: Sessions, settings: Settings, *, sms_client: Client | None = None) -> None:
        self._sessions = session_factory
        self._settings = settings
        self._sms_client = sms_client

    def activities(self) -> list[Callable[..., Any]]:
        return [self.send_notification, self.alert_support]

    @activity.defn(name="send_notification")
    async def send_notification(self, notification: Notification) -> NotificationResult:
        """Send ``notification`` on each of its channels, at most once per ``(order_id, event_key, channel)``.

        See the module docstring for what is retried, what is recorded as failed, and the at-least-once window.
        """
        senders: dict[Channel, Callable[[], Awaitable[str]]] = {}
        for channel in dict.fromkeys(notification.channels):
            if channel is Channel.EMAIL:
                senders[channel] = self._email_sender(notification)
            else:
                senders[channel] = self._sms_sender(notification)
        return await self._deliver(notification.order_id, notification.event_key, senders)

    @activity.defn(name="alert_support")
    async def alert_support(self, alert: SupportAlert) -> NotificationResult:
        """Email the support team once per ``(order_id, event_key)``.

        The outbox key is ``support:{event_key}``, so an alert never collides with the applicant's notification
        for the same event. An alert must not depend on the database it may be reporting about: when the outbox
        cannot be reached, the alert is sent anyway without an outbox row (its Message-ID is still the
        deterministic one, so a rare repeat is recognisable).
        """
        event_key = alert.event_key
        if not event_key.startswith(SUPPORT_EVENT_PREFIX):
            event_key = SUPPORT_EVENT_PREFIX + event_key
        email = _Email(to=self._settings.support_email, subject=alert.subject, body=alert.body)
        send = self._smtp_sender(alert.order_id, event_key, email)
        return await self._deliver(alert.order_id, event_key, {Channel.EMAIL: send}, unrecorded_if_store_down=True)

    # -- delivery through the outbox ---------------------------------------------------------------------------

    async def _deliver(
        self,
        order_id: str,
        event_key: str,
        senders: dict[Channel, Callable[[], Awaitable[str]]],
        *,
        unrecorded_if_store_down: bool = False,
    ) -> NotificationResult:
        sent: list[Channel] = []
        already_sent: list[Channel] = []
        failed: dict[Channel, str] = {}
        transient: dict[Channel, str] = {}
        retry_after: list[timedelta] = []
        for channel, send in senders.items():
            key = (order_id, event_key, channel.value)
            try:
                row = await self._claim(*key)
            except DatabaseUnavailable as e:
                if not unrecorded_if_store_down:
                    raise
                activity.logger.warning("outbox unreachable (%s): sending %s %s unrecorded", e, channel, event_key)
                try:
                    provider_id = await send()
                except PermanentFailure as refused:
                    failed[channel] = str(refused)
                except Exception as down:
                    transient[channel] = f"{type(down).__name__}: {down}; and the outbox: {e}"
                else:
                    sent.append(channel)
                    activity.logger.info("sent %s notice %s (%s), unrecorded", channel.value, event_key, provider_id)
                continue
            if row.status == OutboxStatus.SENT:
                already_sent.append(channel)
                continue
            if row.status == OutboxStatus.FAILED:
                failed[channel] = row.last_error or "failed"
                continue
            async with self._sessions() as settle_session:
                # Check the connection out now, so settling after the provider's answer costs one round trip.
                async with reaching(f"settle outbox {event_key}/{channel.value} of order {order_id}"):
                    await settle_session.connection()
                try:
                    provider_id = await send()
                except PermanentFailure as e:
                    failed[channel] = str(e)
                    await self._settle(settle_session, key, status=OutboxStatus.FAILED, error=str(e))
                    activity.logger.warning("%s %s to order %s refused: %s", channel, event_key, order_id, e)
                    continue
                except Exception as e:
                    transient[channel] = f"{type(e).__name__}: {e}"
                    if isinstance(e, RetryLater):
                        retry_after.append(e.retry_after)
                    await self._settle(settle_session, key, status=OutboxStatus.PENDING, error=transient[channel])
                    continue
                await self._settle(settle_session, key, status=OutboxStatus.SENT, provider_id=provider_id)
                sent.append(channel)
                activity.logger.info("sent %s notice %s (%s)", channel.value, event_key, provider_id)
        if transient:
            detail = "; ".join(f"{channel.value}: {error}" for channel, error in transient.items())
            raise ApplicationError(
                f"notification {event_key} of order {order_id} not delivered yet ({detail})",
                {"sent": [c.value for c in sent], "pending": [c.value for c in transient]},
                type="NotificationNotDelivered",
                # A provider that said when to come back is asked then, not earlier (the latest of them).
                next_retry_delay=min(max(retry_after), MAX_RETRY_AFTER) if retry_after else None,
            )
        return NotificationResult(sent=sent, already_sent=already_sent, failed=failed)

    async def _claim(self, order_id: str, event_key: str, channel: str) -> OutboxRow:
        """The outbox row for this key, created as ``pending`` if new; a pending row counts one more attempt.
        Raises ``DatabaseUnavailable`` when the outbox cannot be reached."""
        where = f"claim outbox {event_key}/{channel} of order {order_id}"
        async with reaching(where), self._sessions() as session, session.begin():
            insert = upsert_insert(session, outbox).values(
                order_id=order_id,
                event_key=event_key,
                channel=channel,
                status=OutboxStatus.PENDING.value,
                attempts=0,
                created_at=datetime.now(UTC),
            )
            await session.execute(insert.on_conflict_do_nothing())
            row = (
                await session.scalars(
                    select(OutboxRow).where(
                        OutboxRow.order_id == order_id, OutboxRow.event_key == event_key, OutboxRow.channel == channel
                    )
                )
            ).one()
            if row.status == OutboxStatus.PENDING:
                row.attempts += 1
            return row

    async def _settle(
        self,
        session: AsyncSession,
        key: tuple[str, str, str],
        *,
        status: OutboxStatus,
        provider_id: str | None = None,
        error: str | None = None,
    ) -> None:
        order_id, event_key, channel = key
        values: dict[str, Any] = {"status": status.value, "last_error": error}
        if status is OutboxStatus.SENT:
            values |= {"provider_id": provider_id, "sent_at": datetime.now(UTC)}
        stmt = (
            update(OutboxRow)
            .where(
                OutboxRow.order_id == order_id,
                OutboxRow.event_key == event_key,
                OutboxRow.channel == channel,
                # Never demote a row another attempt already settled as sent.
                OutboxRow.status != OutboxStatus.SENT.value,
            )
            .values(values)
        )
        for attempt, pause in enumerate((*SETTLE_BACKOFF, None)):
            try:
                await session.execute(stmt)
                await session.commit()
                return
            except Exception:
                await session.rollback()
                if pause is None:
                    async with reaching(f"settle outbox {event_key}/{channel} of order {order_id}"):
                        raise
                activity.logger.warning("settling outbox %s failed (try %d), retrying", key, attempt + 1)
                await asyncio.sleep(pause)

    # -- channels ----------------------------------------------------------------------------------------------

    def _email_sender(self, notification: Notification) -> Callable[[], Awaitable[str]]:
        if not notification.email:
            return _refuse("the notification has no email address")
        subject = notification.subject or f"ICP filing modification {notification.order_id}"
        email = _Email(to=notification.email, subject=subject, body=notification.body or subject)
        return self._smtp_sender(notification.order_id, notification.event_key, email, notification.template)

    def _smtp_sender(
        self, order_id: str, event_key: str, email: _Email, template: str = ""
    ) -> Callable[[], Awaitable[str]]:
        settings = self._settings
        msg_id = message_id(order_id, event_key, settings.mail_from)
        headers = {"X-Icpflow-Order": order_id, "X-Icpflow-Event": event_key}
        if template:
            headers["X-Icpflow-Template"] = template

        async def send() -> str:
            message = render_email(email, mail_from=settings.mail_from, msg_id=msg_id, headers=headers)
            try:
                await aiosmtplib.send(
                    message,
                    hostname=settings.smtp_host,
                    port=settings.smtp_port,
                    username=settings.smtp_username,
                    password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
                    start_tls=settings.smtp_start_tls,
                    timeout=settings.http_timeout_seconds,
                )
            except aiosmtplib.SMTPRecipientsRefused as e:
                replies = "; ".join(f"{r.code} {r.message}" for r in e.recipients)
                if all(r.code >= 500 for r in e.recipients):
                    raise PermanentFailure(f"SMTP refused the recipient: {replies}") from e
                raise RuntimeError(f"SMTP deferred the recipient: {replies}") from e
            except aiosmtplib.SMTPDataError as e:
                if e.code >= 500:
                    raise PermanentFailure(f"SMTP refused the message: {e.code} {e.message}") from e
                raise RuntimeError(f"SMTP deferred the message: {e.code} {e.message}") from e
            return msg_id

        return send

    def _sms_sender(self, notification: Notification) -> Callable[[], Awaitable[str]]:
        if not notification.mobile:
            return _refuse("the notification has no mobile number")
        to = to_e164(notification.mobile)
        body = notification.body or notification.subject or f"ICP filing modification {notification.order_id}"

        async def send() -> str:
            try:
                message = await self._twilio().messages.create_async(
                    to=to, from_=self._settings.twilio_from_number, body=body
                )
            except TwilioRestException as e:
                # HTTP 400 is Twilio's answer for a message it will never accept (21211 invalid To, 21610
                # unsubscribed, 21614 not a mobile …); 401/403 (our credentials), 429 and 5xx are worth a retry.
                if e.status == 400:
                    raise PermanentFailure(f"Twilio {e.code}: {e.msg}") from e
                if isinstance(e, TwilioRetryAfter):
                    raise RetryLater(
                        f"Twilio HTTP {e.status} {e.code}: {e.msg} (retry after {e.retry_after:g} s)",
                        timedelta(seconds=e.retry_after),
                    ) from e
                raise RuntimeError(f"Twilio HTTP {e.status} {e.code}: {e.msg}") from e
            return str(message.sid)

        return send

    def _twilio(self) -> Client:
        if self._sms_client is None:
            settings = self._settings
            self._sms_client = make_twilio_client(
                settings.twilio_account_sid,
                settings.twilio_auth_token.get_secret_value(),
                settings.twilio_base_url,
                timeout=settings.http_timeout_seconds,
            )
        return self._sms_client


def _refuse(reason: str) -> Callable[[], Awaitable[str]]:
    async def send() -> str:
        raise PermanentFailure(reason)

    return send
