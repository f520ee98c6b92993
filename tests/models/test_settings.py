"""Configuration: invalid values fail at start naming the variable; `icpflow config show` masks secrets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from models.settings import ConfigError, Settings, load, masked
from starter.cli import app

ROOT = Path(__file__).resolve().parents[2]


def test_invalid_values_name_every_variable_and_what_is_expected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ICPFLOW_SMTP_PORT", "twenty-five")
    monkeypatch.setenv("ICPFLOW_LOG_FORMAT", "yaml")
    with pytest.raises(ConfigError) as err:
        load(Settings)
    text = str(err.value)
    assert "ICPFLOW_SMTP_PORT" in text and "integer" in text
    assert "ICPFLOW_LOG_FORMAT" in text and "json|text" in text


def test_masked_configuration_hides_secrets_and_url_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ICPFLOW_DATABASE_URL", "postgresql+asyncpg://icpflow:s3cret@db:5432/icpflow")
    monkeypatch.setenv("ICPFLOW_REGULATOR_API_KEY", "live-key-123")
    shown = masked(load(Settings))
    assert shown["ICPFLOW_DATABASE_URL"] == "postgresql+asyncpg://icpflow:********@db:5432/icpflow"
    assert shown["ICPFLOW_REGULATOR_API_KEY"] == "********"
    assert "s3cret" not in json.dumps(shown) and "live-key-123" not in json.dumps(shown)


def test_config_show_prints_the_effective_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ICPFLOW_TWILIO_AUTH_TOKEN", "tw-secret")
    result = CliRunner().invoke(app, ["config", "show", "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["ICPFLOW_TASK_QUEUE"] == "icp-modification"
    assert shown["ICPFLOW_TWILIO_AUTH_TOKEN"] == "********"


def test_the_worker_refuses_to_start_with_invalid_configuration() -> None:
    env = {"ICPFLOW_SMTP_PORT": "x", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "worker.py")], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "ICPFLOW_SMTP_PORT" in done.stderr
    assert "Traceback" not in done.stderr
