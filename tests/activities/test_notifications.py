"""The notification activities against real servers on loopback: an aiosmtpd SMTP server and the Twilio-compatible
SMS sink driven by the real twilio client. Every test runs on SQLite and PostgreSQL (the outbox lives there)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import pytest
import pytest_asyncio
from aiosmtpd.smtp import SMTP, Envelope, Session
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.notifications import MAX_RETRY_AFTER, NotificationActivities, message_id
from models.activity_io import Channel, Notification, NotificationResult, SupportAlert
from models.settings import Settings
from simulators.sms_sink import SmsSink
from simulators.smtp_sink import SmtpSink
from store.db import DatabaseUnavailable, create_engine, session_factory
from store.tables import OutboxRow

Sessions = async_sessionmaker[AsyncSession]
TWILIO_SID = "AC" + "2" * 32
TWILIO_TOKEN = "notifications-test-token"
MAIL_FROM = "icp-filing@provider.example"
SUPPORT = "icp-support@provider.example"
REFUSED_ADDRESS = "nobody@refused.example"


class Inbox:
    """aiosmtpd handler keeping every mail; refuses ``REFUSED_ADDRESS`` as a permanent 550."""

    def __init__(self) -> None:
        self.mail: list[tuple[Envelope, EmailMessage]] = []

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address == REFUSED_ADDRESS:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.mail.append((envelope, message))
        return "250 Message accepted for delivery"


@pytest_asyncio.fixture
async def smtp() -> AsyncIterator[tuple[Inbox, int]]:
    inbox = Inbox()
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTP(inbox, hostname="smtp.test.local"), "127.0.0.1", 0
    )
    port: int = server.sockets[0].getsockname()[1]
    try:
        yield inbox, port
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound (so nobody else takes it) but not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest_asyncio.fixture
async def sms() -> AsyncIterator[SmsSink]:
    sink = SmsSink(TWILIO_SID, TWILIO_TOKEN)
    await sink.start()
    try:
        yield sink
    finally:
        await sink.stop()


def settings_for(smtp_port: int, sms_url: str, *, token: str = TWILIO_TOKEN) -> Settings:
    return Settings(
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        mail_from=MAIL_FROM,
        support_email=SUPPORT,
        twilio_account_sid=TWILIO_SID,
        twilio_auth_token=SecretStr(token),
        twilio_base_url=sms_url,
        http_timeout_seconds=5,
    )


@pytest.fixture
def notifier(db_sessions: Sessions, smtp: tuple[Inbox, int], sms: SmsSink) -> NotificationActivities:
    return NotificationActivities(db_sessions, settings_for(smtp[1], sms.url))


def notification(**overrides: Any) -> Notification:
    values: dict[str, Any] = {
        "order_id": "ord-1",
        "event_key": "stage:sms_verification:1",
        "template": "stage.sms_verification",
        "email": "zhangsan@example.cn",
        "mobile": "13800138000",
        "subject": "ICP备案变更 ord-1：请完成短信核验",
        "body": "您的订单已提交管局。\n\n请在24小时内输入12381发送的验证码。",
    }
    return Notification.model_validate(values | overrides)


async def send(notifier: NotificationActivities, n: Notification) -> NotificationResult:
    result: NotificationResult = await ActivityEnvironment().run(notifier.send_notification, n)
    return result


async def outbox_rows(sessions: Sessions) -> dict[tuple[str, str], OutboxRow]:
    async with sessions() as session:
        rows = (await session.scalars(select(OutboxRow))).all()
    return {(r.event_key, r.channel): r for r in rows}


async def test_email_and_sms_are_sent_and_recorded_with_the_provider_ids(
    notifier: NotificationActivities, db_sessions: Sessions, smtp: tuple[Inbox, int], sms: SmsSink
) -> None:
    result = await send(notifier, notification())

    assert result == NotificationResult(sent=[Channel.EMAIL, Channel.SMS])
    inbox, _ = smtp
    [(envelope, mail)] = inbox.mail
    assert envelope.rcpt_tos == ["zhangsan@example.cn"]
    assert mail["Subject"] == "ICP备案变更 ord-1：请完成短信核验"
    assert mail["Message-ID"] == message_id("ord-1", "stage:sms_verification:1", MAIL_FROM)
    plain, html = mail.get_body(("plain",)), mail.get_body(("html",))
    assert plain is not None and html is not None
    assert "请在24小时内输入12381发送的验证码" in plain.get_content()
    assert "<p>请在24小时内输入12381发送的验证码。</p>" in html.get_content()
    [text] = sms.messages
    assert text.to == "+8613800138000"
    assert "验证码" in text.body

    rows = await outbox_rows(db_sessions)
    email_row, sms_row = rows["stage:sms_verification:1", "email"], rows["stage:sms_verification:1", "sms"]
    assert (email_row.status, email_row.attempts, email_row.provider_id) == ("sent", 1, mail["Message-ID"])
    assert (sms_row.status, sms_row.provider_id) == ("sent", text.sid)
    assert sms_row.sent_at is not None and sms_row.sent_at.tzinfo is not None


async def test_a_retried_send_after_success_sends_nothing_more(
    notifier: NotificationActivities, smtp: tuple[Inbox, int], sms: SmsSink
) -> None:
    first = await send(notifier, notification())
    again = await send(notifier, notification())

    assert first.sent == [Channel.EMAIL, Channel.SMS]
    assert again == NotificationResult(already_sent=[Channel.EMAIL, Channel.SMS])
    assert len(smtp[0].mail) == 1
    assert len(sms.messages) == 1


async def test_another_event_of_the_same_order_is_sent_again(
    notifier: NotificationActivities, smtp: tuple[Inbox, int], sms: SmsSink
) -> None:
    await send(notifier, notification())
    await send(notifier, notification(event_key="stage:sms_verification:2"))
    assert len(smtp[0].mail) == 2
    assert len(sms.messages) == 2
    assert smtp[0].mail[0][1]["Message-ID"] != smtp[0].mail[1][1]["Message-ID"]


async def test_an_invalid_mobile_is_recorded_failed_and_the_email_still_goes(
    notifier: NotificationActivities, db_sessions: Sessions, smtp: tuple[Inbox, int], sms: SmsSink
) -> None:
    result = await send(notifier, notification(mobile="12345"))

    assert result.sent == [Channel.EMAIL]
    assert list(result.failed) == [Channel.SMS]
    assert "21211" in result.failed[Channel.SMS]
    assert len(smtp[0].mail) == 1
    assert sms.messages == []
    sms_row = (await outbox_rows(db_sessions))["stage:sms_verification:1", "sms"]
    assert sms_row.status == "failed" and sms_row.last_error is not None and "21211" in sms_row.last_error

    # A permanent refusal is not retried: the next attempt reports it again and sends nothing.
    again = await send(notifier, notification(mobile="12345"))
    assert again.already_sent == [Channel.EMAIL]
    assert list(again.failed) == [Channel.SMS]
    assert len(smtp[0].mail) == 1 and sms.messages == []


async def test_a_refused_recipient_address_is_recorded_failed_and_the_sms_still_goes(
    notifier: NotificationActivities, db_sessions: Sessions, smtp: tuple[Inbox, int], sms: SmsSink
) -> None:
    result = await send(notifier, notification(email=REFUSED_ADDRESS))

    assert result.sent == [Channel.SMS]
    assert "no such mailbox" in result.failed[Channel.EMAIL]
    assert smtp[0].mail == []
    assert (await outbox_rows(db_sessions))["stage:sms_verification:1", "email"].status == "failed"


async def test_a_channel_without_an_address_is_reported_failed(
    notifier: NotificationActivities, smtp: tuple[Inbox, int], sms: SmsSink
) -> None:
    result = await send(notifier, notification(mobile=None))
    assert result.sent == [Channel.EMAIL]
    assert result.failed == {Channel.SMS: "the notification has no mobile number"}


async def test_smtp_refusing_connections_makes_the_activity_raise_and_the_retry_sends_only_the_email(
    db_sessions: Sessions, smtp: tuple[Inbox, int], sms: SmsSink, closed_port: int
) -> None:
    down = NotificationActivities(db_sessions, settings_for(closed_port, sms.url))
    with pytest.raises(ApplicationError) as raised:
        await send(down, notification())
    assert raised.value.type == "NotificationNotDelivered"
    assert not raised.value.non_retryable
    assert len(sms.messages) == 1  # the SMS did not wait for the mail server
    email_row = (await outbox_rows(db_sessions))["stage:sms_verification:1", "email"]
    assert (email_row.status, email_row.attempts) == ("pending", 1)
    assert email_row.last_error

    # Temporal retries the activity once the mail server is back: only the email goes out.
    up = NotificationActivities(db_sessions, settings_for(smtp[1], sms.url))
    result = await send(up, notification())
    assert result == NotificationResult(sent=[Channel.EMAIL], already_sent=[Channel.SMS])
    assert len(smtp[0].mail) == 1 and len(sms.messages) == 1
    email_row = (await outbox_rows(db_sessions))["stage:sms_verification:1", "email"]
    assert (email_row.status, email_row.attempts, email_row.last_error) == ("sent", 2, None)


async def test_an_unreachable_sms_provider_makes_the_activity_raise_after_sending_the_email(
    db_sessions: Sessions, smtp: tuple[Inbox, int], closed_port: int
) -> None:
    notifier = NotificationActivities(db_sessions, settings_for(smtp[1], f"http://127.0.0.1:{closed_port}"))
    with pytest.raises(ApplicationError, match="sms"):
        await send(notifier, notification())
    assert len(smtp[0].mail) == 1
    assert (await outbox_rows(db_sessions))["stage:sms_verification:1", "sms"].status == "pending"


async def test_rejected_twilio_credentials_are_retried_not_recorded_failed(
    db_sessions: Sessions, smtp: tuple[Inbox, int], sms: SmsSink
) -> None:
    notifier = NotificationActivities(db_sessions, settings_for(smtp[1], sms.url, token="wrong-token"))
    with pytest.raises(ApplicationError, match="401"):
        await send(notifier, notification(channels=[Channel.SMS]))
    assert (await outbox_rows(db_sessions))["stage:sms_verification:1", "sms"].status == "pending"


async def test_alert_support_emails_the_support_team_once_apart_from_the_applicants_notification(
    notifier: NotificationActivities, db_sessions: Sessions, smtp: tuple[Inbox, int]
) -> None:
    alert = SupportAlert(
        order_id="ord-1",
        event_key="stage:sms_verification:1",  # the same key as the applicant's notification, on purpose
        subject="[icpflow] review overdue: order ord-1",
        body="The administration's review passed the 20th business day.",
    )
    await send(notifier, notification(channels=[Channel.EMAIL]))
    first: NotificationResult = await ActivityEnvironment().run(notifier.alert_support, alert)
    again: NotificationResult = await ActivityEnvironment().run(notifier.alert_support, alert)

    assert first == NotificationResult(sent=[Channel.EMAIL])
    assert again == NotificationResult(already_sent=[Channel.EMAIL])
    inbox, _ = smtp
    assert [envelope.rcpt_tos for envelope, _ in inbox.mail] == [["zhangsan@example.cn"], [SUPPORT]]
    assert inbox.mail[1][1]["Subject"] == "[icpflow] review overdue: order ord-1"
    assert ("support:stage:sms_verification:1", "email") in await outbox_rows(db_sessions)


# -- providers failing the way real ones do (the simulators' fault modes) ------------------------------------------


@pytest_asyncio.fixture
async def sink() -> AsyncIterator[SmtpSink]:
    sink = SmtpSink()
    await sink.start()
    try:
        yield sink
    finally:
        await sink.stop()


def through_sink(sessions: Sessions, sink: SmtpSink, sms: SmsSink, timeout: float = 5) -> NotificationActivities:
    settings = settings_for(sink.port, sms.url).model_copy(update={"http_timeout_seconds": timeout})
    return NotificationActivities(sessions, settings)


async def test_twilio_429_with_retry_after_schedules_the_retry_then_and_the_email_still_goes(
    db_sessions: Sessions, sink: SmtpSink, sms: SmsSink
) -> None:
    sms.fail_next(1, 429, retry_after=47)
    with pytest.raises(ApplicationError) as raised:
        await send(through_sink(db_sessions, sink, sms), notification())
    assert raised.value.type == "NotificationNotDelivered" and not raised.value.non_retryable
    assert raised.value.next_retry_delay == timedelta(seconds=47)
    assert "429" in str(raised.value) and "20429" in str(raised.value)
    assert len(sink.messages) == 1 and sms.messages == []
    result = await send(through_sink(db_sessions, sink, sms), notification())
    assert result == NotificationResult(sent=[Channel.SMS], already_sent=[Channel.EMAIL])


async def test_an_absurd_retry_after_is_capped(db_sessions: Sessions, sink: SmtpSink, sms: SmsSink) -> None:
    sms.fail_next(1, 429, retry_after=10 * 24 * 3600)
    with pytest.raises(ApplicationError) as raised:
        await send(through_sink(db_sessions, sink, sms), notification(channels=[Channel.SMS]))
    assert raised.value.next_retry_delay == MAX_RETRY_AFTER


@pytest.mark.parametrize("status", [500, 503])
async def test_twilio_5xx_without_retry_after_leaves_the_backoff_to_temporal(
    db_sessions: Sessions, sink: SmtpSink, sms: SmsSink, status: int
) -> None:
    sms.fail_next(1, status)
    with pytest.raises(ApplicationError) as raised:
        await send(through_sink(db_sessions, sink, sms), notification(channels=[Channel.SMS]))
    assert not raised.value.non_retryable and raised.value.next_retry_delay is None
    assert f"HTTP {status}" in str(raised.value)
    assert (await outbox_rows(db_sessions))["stage:sms_verification:1", "sms"].status == "pending"


async def test_an_sms_provider_that_hangs_is_a_retryable_timeout(
    db_sessions: Sessions, sink: SmtpSink, sms: SmsSink
) -> None:
    sms.hang_next(1)
    try:
        with pytest.raises(ApplicationError) as raised:
            await send(through_sink(db_sessions, sink, sms, timeout=0.3), notification(channels=[Channel.SMS]))
    finally:
        sms.clear_faults()
    assert not raised.value.non_retryable and "Timeout" in str(raised.value)
    assert sms.messages == []


@pytest.mark.parametrize(
    ("fault", "value", "shown"),
    [
        ("greeting_reply", "421 4.3.2 Service not available", "421"),
        ("rcpt_reply", "451 4.3.0 Mailbox temporarily unavailable", "deferred the recipient: 451"),
        ("data_reply", "451 4.3.0 Try again later", "deferred the message: 451"),
        ("hang", True, "Timed out"),
    ],
)
async def test_smtp_4xx_and_silence_are_retried_and_the_sms_still_goes(
    db_sessions: Sessions, sink: SmtpSink, sms: SmsSink, fault: str, value: object, shown: str
) -> None:
    setattr(sink, fault, value)
    with pytest.raises(ApplicationError) as raised:
        await send(through_sink(db_sessions, sink, sms, timeout=0.5), notification())
    assert raised.value.type == "NotificationNotDelivered" and not raised.value.non_retryable
    assert shown in str(raised.value)
    assert sink.messages == [] and len(sms.messages) == 1 and sink.fault_hits >= 1
    email_row = (await outbox_rows(db_sessions))["stage:sms_verification:1", "email"]
    assert email_row.status == "pending" and shown in (email_row.last_error or "")
    sink.clear_faults()
    result = await send(through_sink(db_sessions, sink, sms), notification())
    assert result == NotificationResult(sent=[Channel.EMAIL], already_sent=[Channel.SMS])
    assert len(sink.messages) == 1


@pytest.mark.parametrize("fault", ["rcpt_reply", "data_reply"])
async def test_smtp_5xx_for_the_message_is_recorded_failed_and_not_retried(
    db_sessions: Sessions, sink: SmtpSink, sms: SmsSink, fault: str
) -> None:
    setattr(sink, fault, "554 5.7.1 Message rejected")
    result = await send(through_sink(db_sessions, sink, sms), notification())
    assert result.sent == [Channel.SMS]
    assert "554" in result.failed[Channel.EMAIL]
    sink.clear_faults()
    again = await send(through_sink(db_sessions, sink, sms), notification())
    assert "554" in again.failed[Channel.EMAIL] and sink.messages == []  # refused for good: never resent


async def test_smtp_5xx_greeting_is_the_relay_refusing_us_and_is_retried(
    db_sessions: Sessions, sink: SmtpSink, sms: SmsSink
) -> None:
    sink.greeting_reply = "554 5.7.1 No SMTP service here"
    with pytest.raises(ApplicationError, match="554"):
        await send(through_sink(db_sessions, sink, sms), notification(channels=[Channel.EMAIL]))


@pytest.fixture
def dead_outbox() -> Iterator[Sessions]:
    """Sessions on a PostgreSQL URL whose port refuses connections: the outbox database is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield session_factory(create_engine(f"postgresql+asyncpg://icpflow@127.0.0.1:{sock.getsockname()[1]}/x"))


async def test_an_unreachable_outbox_sends_no_notice_and_says_why(
    dead_outbox: Sessions, sink: SmtpSink, sms: SmsSink
) -> None:
    with pytest.raises(DatabaseUnavailable, match="claim outbox stage:sms_verification:1/email"):
        await send(through_sink(dead_outbox, sink, sms), notification())
    assert sink.messages == [] and sms.messages == []


async def test_a_support_alert_goes_out_unrecorded_when_the_outbox_is_unreachable(
    dead_outbox: Sessions, sink: SmtpSink, sms: SmsSink
) -> None:
    alert = SupportAlert(order_id="ord-1", event_key="dependency-down-database:4", subject="db down", body="down")
    result = await ActivityEnvironment().run(through_sink(dead_outbox, sink, sms).alert_support, alert)
    assert result.sent == [Channel.EMAIL]
    [mail] = sink.messages
    assert mail.rcpt_tos == [SUPPORT]
    assert mail.message["Message-ID"] == message_id("ord-1", "support:dependency-down-database:4", MAIL_FROM)
