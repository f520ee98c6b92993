"""The SMTP sink receives what aiosmtplib sends and shows it as JSON."""

from __future__ import annotations

from collections.abc import AsyncIterator
from email.message import EmailMessage

import aiosmtplib
import httpx
import pytest

from simulators.smtp_sink import SmtpSink


@pytest.fixture
async def sink() -> AsyncIterator[SmtpSink]:
    sink = SmtpSink()
    await sink.start("127.0.0.1", 0, view_port=0)
    yield sink
    await sink.stop()


def _mail(
    to: str = "zhang.san@example.cn", subject: str = "备案变更已通过", body: str = "您的备案变更已通过审核。"
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "icp-filing@provider.example"
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    return message


async def test_mail_sent_with_aiosmtplib_is_received_and_parsed(sink: SmtpSink) -> None:
    await aiosmtplib.send(_mail(), hostname="127.0.0.1", port=sink.port)

    [received] = sink.messages
    assert received.mail_from == "icp-filing@provider.example"
    assert received.rcpt_tos == ["zhang.san@example.cn"]
    assert received.subject == "备案变更已通过"
    assert received.body.strip() == "您的备案变更已通过审核。"


async def test_any_smtp_login_is_accepted_so_relay_credentials_work_locally(sink: SmtpSink) -> None:
    await aiosmtplib.send(_mail(), hostname="127.0.0.1", port=sink.port, username="relay-user", password="secret")

    assert len(sink.messages) == 1


async def test_mail_view_lists_received_mail_as_json_filtered_by_recipient(sink: SmtpSink) -> None:
    await aiosmtplib.send(_mail(to="a@example.cn", subject="one"), hostname="127.0.0.1", port=sink.port)
    await aiosmtplib.send(_mail(to="b@example.cn", subject="two"), hostname="127.0.0.1", port=sink.port)
    assert sink.view_url is not None

    async with httpx.AsyncClient(base_url=sink.view_url) as http:
        everything = (await http.get("/sim/mail")).json()["mail"]
        to_b = (await http.get("/sim/mail", params={"to": "B@example.cn"})).json()["mail"]
        deleted = (await http.delete("/sim/mail")).json()

    assert [m["subject"] for m in everything] == ["one", "two"]
    assert [(m["from"], m["to"], m["subject"]) for m in to_b] == [
        ("icp-filing@provider.example", ["b@example.cn"], "two")
    ]
    assert deleted == {"deleted": 2}
    assert sink.messages == []


# ---------------------------------------------------------------- injected faults, met through aiosmtplib


async def test_a_421_greeting_refuses_the_session(sink: SmtpSink) -> None:
    sink.greeting_reply = "421 4.3.2 Service not available"
    with pytest.raises(aiosmtplib.SMTPConnectResponseError) as raised:
        await aiosmtplib.send(_mail(), hostname="127.0.0.1", port=sink.port, timeout=5)
    assert raised.value.code == 421
    sink.clear_faults()
    await aiosmtplib.send(_mail(), hostname="127.0.0.1", port=sink.port, timeout=5)
    assert len(sink.messages) == 1 and sink.fault_hits == 1


@pytest.mark.parametrize("code", [451, 550])
async def test_rcpt_replies_refuse_the_recipient_with_the_code(sink: SmtpSink, code: int) -> None:
    sink.rcpt_reply = f"{code} {code // 100}.1.1 injected"
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as raised:
        await aiosmtplib.send(_mail(), hostname="127.0.0.1", port=sink.port, timeout=5)
    assert [r.code for r in raised.value.recipients] == [code]
    assert sink.messages == []


@pytest.mark.parametrize("code", [451, 554])
async def test_data_replies_refuse_the_message_and_keep_nothing(sink: SmtpSink, code: int) -> None:
    sink.data_reply = f"{code} {code // 100}.7.1 injected"
    with pytest.raises(aiosmtplib.SMTPDataError) as raised:
        await aiosmtplib.send(_mail(), hostname="127.0.0.1", port=sink.port, timeout=5)
    assert raised.value.code == code
    assert sink.messages == []


async def test_a_hanging_server_times_the_client_out(sink: SmtpSink) -> None:
    sink.hang = True
    with pytest.raises(aiosmtplib.SMTPTimeoutError):
        await aiosmtplib.send(_mail(), hostname="127.0.0.1", port=sink.port, timeout=0.3)
    sink.clear_faults()
    await aiosmtplib.send(_mail(), hostname="127.0.0.1", port=sink.port, timeout=5)
    assert len(sink.messages) == 1


async def test_a_stopped_sink_refuses_connections_and_starts_again_on_its_port(sink: SmtpSink) -> None:
    port = sink.port
    await sink.stop()
    with pytest.raises(aiosmtplib.SMTPConnectError):
        await aiosmtplib.send(_mail(), hostname="127.0.0.1", port=port, timeout=5)
    await sink.start("127.0.0.1", port)
    await aiosmtplib.send(_mail(), hostname="127.0.0.1", port=port, timeout=5)
    assert len(sink.messages) == 1
