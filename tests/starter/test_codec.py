"""Personal data is encrypted wherever Temporal stores it (starter/codec.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload

from models.order import ChangeField
from models.settings import Settings
from models.stages import Stage
from starter.codec import CodecKeyError, EncryptionCodec, codec_from_settings, local_keys, new_key, parse_keys
from tests.workflows.driver import Driver, new_order


def plain(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(text).encode())


async def test_payloads_round_trip_and_carry_their_key_id() -> None:
    codec = EncryptionCodec(parse_keys(json.dumps({"k1": new_key()})), "k1")
    [sealed] = await codec.encode([plain("11010519491231002X")])
    assert sealed.metadata["encryption-key-id"] == b"k1"
    assert b"11010519491231002X" not in sealed.data
    assert await codec.decode([sealed]) == [plain("11010519491231002X")]


async def test_key_rotation_old_payloads_still_decrypt_with_the_old_key_listed() -> None:
    old, new = new_key(), new_key()
    before = EncryptionCodec(parse_keys(json.dumps({"2026-10": old})), "2026-10")
    [sealed_old] = await before.encode([plain("13800138000")])
    after = EncryptionCodec(parse_keys(json.dumps({"2026-10": old, "2026-11": new})), "2026-11")
    [sealed_new] = await after.encode([plain("13800138000")])
    assert sealed_new.metadata["encryption-key-id"] == b"2026-11"
    assert await after.decode([sealed_old, sealed_new]) == [plain("13800138000")] * 2
    retired = EncryptionCodec(parse_keys(json.dumps({"2026-11": new})), "2026-11")
    with pytest.raises(CodecKeyError, match="2026-10"):
        await retired.decode([sealed_old])


async def test_tampered_payload_is_refused() -> None:
    codec = EncryptionCodec(parse_keys(json.dumps({"k1": new_key()})), "k1")
    [sealed] = await codec.encode([plain("张三")])
    sealed.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    with pytest.raises(Exception):  # noqa: B017 - cryptography's InvalidTag
        await codec.decode([sealed])


def test_bad_key_configuration_names_the_variable() -> None:
    with pytest.raises(CodecKeyError, match="ICPFLOW_CODEC_KEYS"):
        parse_keys("not json")
    with pytest.raises(CodecKeyError, match="32 bytes"):
        EncryptionCodec({"short": b"x" * 16}, "short")
    with pytest.raises(CodecKeyError, match="ICPFLOW_CODEC_ACTIVE_KEY"):
        codec_from_settings(Settings(codec_keys=json.dumps({"a": new_key(), "b": new_key()})))


def test_local_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    keys, active = local_keys(tmp_path)
    assert (tmp_path / "codec-keys.json").stat().st_mode & 0o077 == 0
    assert local_keys(tmp_path) == (keys, active)


async def test_histories_hold_no_plaintext_id_number_mobile_or_name(temporal_env, orders, stack) -> None:  # type: ignore[no-untyped-def]
    driver = Driver(temporal_env, orders, stack)
    order = new_order(changes=[ChangeField.SERVICE_PERSON_IN_CHARGE])
    await driver.place(order)
    await driver.through_collection(order.order_id)
    handle = await orders.handle(order.order_id)
    events = (await handle.fetch_history()).events
    raw = b"".join(e.SerializeToString() for e in events)  # payload bytes exactly as the server stores them
    people = [order.record.entity.person_in_charge, *(s.person_in_charge for s in order.record.services)]
    people += [c.new_person for c in order.changes if c.new_person is not None]
    for person in people:
        for secret in (person.id_number, person.mobile, person.name, person.email):
            assert secret.encode() not in raw, f"{secret!r} appears in clear in the history"
    # Control: the same bytes, decrypted with the session's key, do hold the order's personal data.
    started = events[0].workflow_execution_started_event_attributes.input.payloads
    decoded = await codec_from_settings(stack.settings).decode(list(started))
    assert order.contact_person().id_number.encode() in b"".join(p.data for p in decoded)
    # The order is still readable through the facade (which decrypts).
    assert (await driver.state(order.order_id)).stage is Stage.INITIAL_REVIEW
