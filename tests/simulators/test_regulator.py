"""The regulator simulator: submission, MIIT SMS verification (DOMAIN.md step 7) and the review (step 8)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from simulators.regulator import REJECTION_REASONS, RegulatorSimulator, code_from_sms
from simulators.sms_sink import SmsSink

SID = "AC" + "3" * 32
TOKEN = "sink-token"
API_KEY = "regulator-test-key"
ENTITY_MOBILE = "+8613800138000"
SITE_MOBILE = "13900139000"


@dataclass
class Regulator:
    sim: RegulatorSimulator
    sms: SmsSink
    api: httpx.AsyncClient  # authenticated provider API
    control: httpx.AsyncClient  # /sim endpoints

    async def submit(self, key: str = "order-1:1", **changes: Any) -> httpx.Response:
        return await self.api.post("/v1/submissions", json=submission(key, **changes))

    def latest_code(self, mobile: str = ENTITY_MOBILE) -> str:
        return code_from_sms(self.sms.messages_to(mobile)[-1].body)

    async def verify(self, submission_id: str, code: str) -> dict[str, Any]:
        response = await self.api.post(f"/v1/submissions/{submission_id}/sms-verification", json={"code": code})
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def status(self, submission_id: str) -> dict[str, Any]:
        response = await self.api.get(f"/v1/submissions/{submission_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())


def submission(key: str, **changes: Any) -> dict[str, Any]:
    return {
        "idempotency_key": key,
        "order_id": "order-1",
        "kind": "website",
        "province": "beijing",
        "filing_number": "京ICP备12345678号-1",
        "mobiles": [ENTITY_MOBILE, SITE_MOBILE],
    } | changes


async def _regulator(sms: SmsSink, **options: Any) -> AsyncIterator[Regulator]:
    sim = RegulatorSimulator.with_twilio(API_KEY, SID, TOKEN, sms.url, **options)
    await sim.start("127.0.0.1", 0)
    async with (
        httpx.AsyncClient(base_url=sim.url, headers={"Authorization": f"Bearer {API_KEY}"}) as api,
        httpx.AsyncClient(base_url=sim.url) as control,
    ):
        yield Regulator(sim, sms, api, control)
    await sim.stop()


@pytest.fixture
async def sms() -> AsyncIterator[SmsSink]:
    sink = SmsSink(SID, TOKEN)
    await sink.start("127.0.0.1", 0)
    yield sink
    await sink.stop()


@pytest.fixture
async def regulator(sms: SmsSink) -> AsyncIterator[Regulator]:
    async for r in _regulator(sms, mode="manual", seed=7):
        yield r


async def _verified(regulator: Regulator) -> str:
    submission_id = str((await regulator.submit()).json()["submission_id"])
    assert (await regulator.verify(submission_id, regulator.latest_code()))["outcome"] == "verified"
    return submission_id


async def test_submission_texts_a_six_digit_code_from_12381_to_each_distinct_mobile(regulator: Regulator) -> None:
    response = await regulator.submit(mobiles=[ENTITY_MOBILE, SITE_MOBILE, "+86 139-0013-9000"])

    assert response.status_code == 201
    body = response.json()
    assert (body["status"], body["sms_sent_to"]) == ("awaiting_sms", 2)
    assert datetime.fromisoformat(body["received_at"]).utcoffset() == timedelta(0)
    assert sorted(m.to for m in regulator.sms.messages) == [ENTITY_MOBILE, "+86" + SITE_MOBILE]
    assert {m.from_ for m in regulator.sms.messages} == {"12381"}
    assert regulator.sms.messages[0].body.startswith("【工信部ICP备案】您的验证码为")
    assert "24小时内有效" in regulator.sms.messages[0].body
    assert len(regulator.latest_code()) == 6


async def test_people_sharing_a_number_get_one_sms(regulator: Regulator) -> None:
    response = await regulator.submit(mobiles=[ENTITY_MOBILE, "13800138000"])

    assert response.json()["sms_sent_to"] == 1
    assert len(regulator.sms.messages) == 1


async def test_same_idempotency_key_returns_the_same_submission_and_texts_once(regulator: Regulator) -> None:
    first = await regulator.submit("order-1:1")
    again = await regulator.submit("order-1:1")

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["submission_id"] == first.json()["submission_id"]
    assert len(regulator.sms.messages_to(ENTITY_MOBILE)) == 1


async def test_new_idempotency_key_is_a_new_submission(regulator: Regulator) -> None:
    first = await regulator.submit("order-1:1")
    second = await regulator.submit("order-1:2")

    assert second.status_code == 201
    assert second.json()["submission_id"] != first.json()["submission_id"]


async def test_reusing_an_idempotency_key_for_a_different_submission_is_a_conflict(regulator: Regulator) -> None:
    first = await regulator.submit("order-1:1")
    conflict = await regulator.submit("order-1:1", mobiles=["13700137000"])

    assert conflict.status_code == 409
    assert conflict.json()["submission_id"] == first.json()["submission_id"]


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-key", f"Basic {API_KEY}"])
async def test_missing_or_wrong_api_key_is_refused_with_401(regulator: Regulator, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}

    response = await regulator.control.post("/v1/submissions", json=submission("k"), headers=headers)

    assert response.status_code == 401
    assert regulator.sms.messages == []


async def test_a_number_that_is_not_a_mainland_mobile_is_refused_before_texting(regulator: Regulator) -> None:
    response = await regulator.submit(mobiles=["+15551234567"])

    assert response.status_code == 422
    assert regulator.sms.messages == []


async def test_code_read_from_the_sms_sink_verifies_and_the_review_starts(regulator: Regulator) -> None:
    submission_id = (await regulator.submit()).json()["submission_id"]

    result = await regulator.verify(submission_id, regulator.latest_code())

    assert result == {"outcome": "verified", "attempts_left": 5}
    status = await regulator.status(submission_id)
    assert (status["status"], status["reasons"], status["decided_at"]) == ("under_review", [], None)


async def test_verifying_again_after_success_still_reports_verified(regulator: Regulator) -> None:
    submission_id = await _verified(regulator)

    assert (await regulator.verify(submission_id, "000000"))["outcome"] == "verified"


async def test_five_wrong_codes_in_a_row_return_the_submission(regulator: Regulator) -> None:
    submission_id = (await regulator.submit()).json()["submission_id"]
    wrong = "000000" if regulator.latest_code() != "000000" else "111111"

    results = [await regulator.verify(submission_id, wrong) for _ in range(5)]

    assert [(r["outcome"], r["attempts_left"]) for r in results] == [
        ("wrong_code", 4),
        ("wrong_code", 3),
        ("wrong_code", 2),
        ("wrong_code", 1),
        ("returned", 0),
    ]
    assert (await regulator.verify(submission_id, regulator.latest_code()))["outcome"] == "returned"
    assert (await regulator.status(submission_id))["status"] == "returned"


async def test_forced_expiry_makes_the_code_useless(regulator: Regulator) -> None:
    submission_id = (await regulator.submit()).json()["submission_id"]

    expired = await regulator.control.post(f"/sim/submissions/{submission_id}/expire")

    assert expired.status_code == 200
    assert await regulator.verify(submission_id, regulator.latest_code()) == {"outcome": "expired", "attempts_left": 0}
    assert (await regulator.status(submission_id))["status"] == "expired"


async def test_resend_texts_a_new_code_and_only_the_new_one_verifies(regulator: Regulator) -> None:
    submission_id = (await regulator.submit()).json()["submission_id"]
    old_code = regulator.latest_code()

    response = await regulator.api.post(f"/v1/submissions/{submission_id}/sms-resend")

    assert response.status_code == 200
    new_code = regulator.latest_code()
    assert new_code != old_code
    assert len(regulator.sms.messages_to(ENTITY_MOBILE)) == 2
    assert (await regulator.verify(submission_id, old_code))["outcome"] == "wrong_code"
    assert (await regulator.verify(submission_id, new_code))["outcome"] == "verified"


async def test_resend_once_verified_is_a_conflict(regulator: Regulator) -> None:
    submission_id = await _verified(regulator)

    response = await regulator.api.post(f"/v1/submissions/{submission_id}/sms-resend")

    assert response.status_code == 409


async def test_sim_list_shows_the_current_code(regulator: Regulator) -> None:
    submission_id = (await regulator.submit()).json()["submission_id"]

    [listed] = (await regulator.control.get("/sim/submissions")).json()["submissions"]

    assert (listed["submission_id"], listed["code"]) == (submission_id, regulator.latest_code())


async def test_manual_approval_is_shown_by_get(regulator: Regulator) -> None:
    submission_id = await _verified(regulator)
    assert (await regulator.status(submission_id))["status"] == "under_review"  # manual: nothing decides alone

    decided = await regulator.control.post(f"/sim/submissions/{submission_id}/decide", json={"decision": "approved"})

    assert decided.status_code == 200
    status = await regulator.status(submission_id)
    assert (status["status"], status["reasons"]) == ("approved", [])
    assert status["decided_at"] is not None


async def test_manual_rejection_expands_catalogue_codes_into_reasons(regulator: Regulator) -> None:
    submission_id = await _verified(regulator)

    await regulator.control.post(
        f"/sim/submissions/{submission_id}/decide",
        json={"decision": "rejected", "reasons": ["domain_expired", "备案号未悬挂"]},
    )

    status = await regulator.status(submission_id)
    assert status["status"] == "rejected"
    assert status["reasons"] == ["域名已过期 / Domain expired", "备案号未悬挂"]


async def test_deciding_before_verification_is_a_conflict(regulator: Regulator) -> None:
    submission_id = (await regulator.submit()).json()["submission_id"]

    response = await regulator.control.post(f"/sim/submissions/{submission_id}/decide", json={"decision": "approved"})

    assert response.status_code == 409


async def test_unknown_submission_is_404(regulator: Regulator) -> None:
    assert (await regulator.api.get("/v1/submissions/sub_missing")).status_code == 404


async def test_failed_sms_channel_creates_nothing_so_a_retry_starts_afresh(sms: SmsSink) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    sim = RegulatorSimulator.with_twilio(API_KEY, SID, TOKEN, f"http://127.0.0.1:{dead_port}")
    await sim.start("127.0.0.1", 0)
    try:
        async with httpx.AsyncClient(base_url=sim.url, headers={"Authorization": f"Bearer {API_KEY}"}) as api:
            response = await api.post("/v1/submissions", json=submission("order-1:1"))
            listed = (await api.get("/sim/submissions")).json()["submissions"]
    finally:
        await sim.stop()

    assert response.status_code == 503
    assert listed == []


async def test_auto_mode_decides_by_itself_after_the_scaled_review_delay(sms: SmsSink) -> None:
    # 1e-7: the longest review (20 business days ≈ 28 calendar days) lasts about a quarter of a second. The SMS
    # window is given explicitly: scaled the same way it would be 9 ms, less than one request on a busy machine.
    async for regulator in _regulator(
        sms, mode="auto", time_factor=1e-7, approve_ratio=0.0, seed=3, sms_window=timedelta(minutes=1)
    ):
        submission_id = await _verified(regulator)

        status = await regulator.status(submission_id)
        for _ in range(100):
            if status["status"] != "under_review":
                break
            await asyncio.sleep(0.05)
            status = await regulator.status(submission_id)

        assert status["status"] == "rejected"
        assert 1 <= len(status["reasons"]) <= 3
        assert set(status["reasons"]) <= {r.text for r in REJECTION_REASONS}
        assert datetime.fromisoformat(status["decided_at"]) > datetime.fromisoformat(status["received_at"])


async def test_sms_window_defaults_to_24_hours_scaled_by_the_time_factor(sms: SmsSink) -> None:
    simulator = RegulatorSimulator.with_twilio(API_KEY, SID, TOKEN, sms.url, time_factor=1 / 8640)

    assert simulator.sms_window == timedelta(seconds=10)


async def test_a_code_in_full_width_digits_is_just_a_wrong_code(regulator: Regulator) -> None:
    submission_id = (await regulator.submit()).json()["submission_id"]

    assert (await regulator.verify(submission_id, "１２３４５６"))["outcome"] == "wrong_code"


# ---------------------------------------------------------------- injected faults


async def test_injected_5xx_does_nothing_and_the_next_request_works(regulator: Regulator) -> None:
    regulator.sim.fail_next(1, 502)
    failed = await regulator.submit()
    assert failed.status_code == 502 and failed.json()["error"] == "unavailable"
    assert regulator.sms.messages == []
    assert (await regulator.submit()).status_code == 201


async def test_faults_can_target_one_method(regulator: Regulator) -> None:
    regulator.sim.fail_next(1, 503, method="GET")
    submission_id = (await regulator.submit()).json()["submission_id"]
    assert (await regulator.api.get(f"/v1/submissions/{submission_id}")).status_code == 503
    assert (await regulator.status(submission_id))["status"] == "awaiting_sms"


async def test_a_hung_request_times_the_client_out_and_creates_nothing(regulator: Regulator) -> None:
    regulator.sim.hang_next(1)
    with pytest.raises(httpx.ReadTimeout):
        await regulator.api.post("/v1/submissions", json=submission("order-1:1"), timeout=0.3)
    regulator.sim.clear_faults()
    assert (await regulator.control.get("/sim/submissions")).json()["submissions"] == []
    assert regulator.sim.fault_hits == 1


async def test_a_malformed_answer_still_carries_out_the_request(regulator: Regulator) -> None:
    regulator.sim.malformed_next(1)
    garbled = await regulator.submit()
    assert garbled.status_code == 201
    with pytest.raises(ValueError):
        garbled.json()
    # The submission exists and was texted once: the retry with the same key gets it, and texts nobody again.
    again = await regulator.submit()
    assert again.status_code == 200
    assert len(regulator.sms.messages_to(ENTITY_MOBILE)) == 1


async def test_faults_spare_the_simulator_control_endpoints(regulator: Regulator) -> None:
    regulator.sim.fail_next(5)
    assert (await regulator.control.get("/sim/submissions")).status_code == 200
    regulator.sim.clear_faults()
    assert (await regulator.submit()).status_code == 201
