"""The SMS sink answers the real twilio client the way Twilio would."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from twilio.base.exceptions import TwilioRestException

from activities.sms_client import make_twilio_client
from simulators.sms_sink import SmsSink

SID = "AC" + "2" * 32
TOKEN = "sink-token"
MOBILE = "+8613800138000"


@pytest.fixture
async def sink() -> AsyncIterator[SmsSink]:
    sink = SmsSink(SID, TOKEN)
    await sink.start("127.0.0.1", 0)
    yield sink
    await sink.stop()


async def test_real_twilio_client_sends_through_the_sink(sink: SmsSink) -> None:
    twilio = make_twilio_client(SID, TOKEN, sink.url)

    message = await twilio.messages.create_async(to=MOBILE, from_="12381", body="您的验证码为123456")

    assert message.sid is not None and message.sid.startswith("SM")
    assert (message.status, message.to, message.from_, message.body) == (
        "queued",
        MOBILE,
        "12381",
        "您的验证码为123456",
    )
    assert message.date_created is not None
    assert [(m.sid, m.to, m.body) for m in sink.messages] == [(message.sid, MOBILE, "您的验证码为123456")]


async def test_messages_are_listed_and_filtered_by_recipient_over_http(sink: SmsSink) -> None:
    twilio = make_twilio_client(SID, TOKEN, sink.url)
    await twilio.messages.create_async(to=MOBILE, from_="12381", body="one")
    await twilio.messages.create_async(to="+8613900139000", from_="12381", body="two")

    async with httpx.AsyncClient(base_url=sink.url) as http:
        everything = (await http.get("/sim/messages")).json()["messages"]
        to_one = (await http.get("/sim/messages", params={"to": MOBILE})).json()["messages"]
        bare_number = (await http.get("/sim/messages", params={"to": "13800138000"})).json()["messages"]

    assert [m["body"] for m in everything] == ["one", "two"]
    assert [m["body"] for m in to_one] == [m["body"] for m in bare_number] == ["one"]


async def test_clearing_the_sink_forgets_every_message(sink: SmsSink) -> None:
    await make_twilio_client(SID, TOKEN, sink.url).messages.create_async(to=MOBILE, from_="12381", body="x")

    async with httpx.AsyncClient(base_url=sink.url) as http:
        deleted = (await http.delete("/sim/messages")).json()

    assert deleted == {"deleted": 1}
    assert sink.messages == []


@pytest.mark.parametrize("to", ["+15551234567", "13800138000", "+8612800138000", "+86138001380001"])
async def test_number_that_is_not_a_mainland_mobile_in_e164_raises_twilio_error_21211(sink: SmsSink, to: str) -> None:
    twilio = make_twilio_client(SID, TOKEN, sink.url)

    with pytest.raises(TwilioRestException) as raised:
        await twilio.messages.create_async(to=to, from_="12381", body="x")

    assert (raised.value.status, raised.value.code) == (400, 21211)
    assert sink.messages == []


async def test_wrong_auth_token_is_refused_with_401(sink: SmsSink) -> None:
    twilio = make_twilio_client(SID, "not-the-token", sink.url)

    with pytest.raises(TwilioRestException) as raised:
        await twilio.messages.create_async(to=MOBILE, from_="12381", body="x")

    assert (raised.value.status, raised.value.code) == (401, 20003)
    assert sink.messages == []


async def test_request_without_credentials_gets_a_twilio_shaped_401(sink: SmsSink) -> None:
    async with httpx.AsyncClient(base_url=sink.url) as http:
        response = await http.post(
            f"/2010-04-01/Accounts/{SID}/Messages.json", data={"To": MOBILE, "From": "12381", "Body": "x"}
        )

    assert response.status_code == 401
    assert response.json() == {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }


def test_client_routes_twilio_urls_to_the_base_url_keeping_path_and_query() -> None:
    twilio = make_twilio_client(SID, TOKEN, "http://127.0.0.1:8304/")

    routed = twilio.http_client.route(f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Messages.json?PageSize=5")

    assert routed == f"http://127.0.0.1:8304/2010-04-01/Accounts/{SID}/Messages.json?PageSize=5"


def test_client_without_base_url_talks_to_the_real_twilio() -> None:
    twilio = make_twilio_client(SID, TOKEN, None)

    assert twilio.http_client.route("https://api.twilio.com/x") == "https://api.twilio.com/x"


# ---------------------------------------------------------------- injected faults, met through the real client


@pytest.mark.parametrize(("status", "code"), [(429, 20429), (500, 20500)])
async def test_injected_errors_reach_the_twilio_client_as_twilio_errors_then_the_sink_recovers(
    sink: SmsSink, status: int, code: int
) -> None:
    twilio = make_twilio_client(SID, TOKEN, sink.url)
    sink.fail_next(1, status)
    with pytest.raises(TwilioRestException) as raised:
        await twilio.messages.create_async(to=MOBILE, from_="12381", body="x")
    assert (raised.value.status, raised.value.code) == (status, code)
    assert sink.messages == [] and sink.fault_hits == 1
    await twilio.messages.create_async(to=MOBILE, from_="12381", body="x")
    assert len(sink.messages) == 1


async def test_a_429_carries_the_retry_after_header(sink: SmsSink) -> None:
    sink.fail_next(1, 429, retry_after=47)
    async with httpx.AsyncClient(base_url=sink.url, auth=(SID, TOKEN)) as http:
        response = await http.post(
            f"/2010-04-01/Accounts/{SID}/Messages.json", data={"To": MOBILE, "From": "12381", "Body": "x"}
        )
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "47"
    assert response.json()["code"] == 20429


async def test_a_hung_send_times_the_client_out_and_sends_nothing(sink: SmsSink) -> None:
    twilio = make_twilio_client(SID, TOKEN, sink.url, timeout=0.3)
    sink.hang_next(1)
    with pytest.raises(TimeoutError):
        await twilio.messages.create_async(to=MOBILE, from_="12381", body="x")
    sink.clear_faults()
    assert sink.messages == [] and sink.fault_hits == 1
    await twilio.messages.create_async(to=MOBILE, from_="12381", body="x")
    assert len(sink.messages) == 1


async def test_a_number_marked_invalid_is_refused_with_21211(sink: SmsSink) -> None:
    twilio = make_twilio_client(SID, TOKEN, sink.url)
    sink.invalid.add("13800138000")
    with pytest.raises(TwilioRestException) as raised:
        await twilio.messages.create_async(to=MOBILE, from_="12381", body="x")
    assert (raised.value.status, raised.value.code) == (400, 21211)
    sink.clear_faults()
    await twilio.messages.create_async(to=MOBILE, from_="12381", body="x")
    assert len(sink.messages) == 1
