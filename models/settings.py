"""Configuration: environment variables with the prefix ``ICPFLOW_``; defaults run locally with no setup."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ICPFLOW_", extra="ignore")

    data_dir: Path = Path(".data")
    database_url: str = "sqlite+aiosqlite:///.data/icpflow.db"

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    task_queue: str = "icp-modification"

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 8025
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_start_tls: bool = False
    mail_from: str = "icp-filing@provider.example"
    support_email: str = "icp-support@provider.example"

    # The real Twilio client is always used; the base URL points it at the loopback sink locally.
    twilio_account_sid: str = "AC00000000000000000000000000000000"
    twilio_auth_token: SecretStr = SecretStr("local-sink-token")
    twilio_from_number: str = "+8610690000"
    twilio_base_url: str | None = "http://127.0.0.1:8304"

    regulator_url: str = "http://127.0.0.1:8301"
    regulator_api_key: SecretStr = SecretStr("local-regulator-key")
    rdap_base_url: str = "http://127.0.0.1:8302"
    face_verification_url: str = "http://127.0.0.1:8303"

    # Payload encryption (starter/codec.py): JSON {"key-id": "<base64 of 32 bytes>"}; unset → a local key file.
    codec_keys: SecretStr | None = None
    codec_active_key: str | None = None

    # Logs: "json" in production (one object per line), "text" locally.
    log_format: str = Field(default="text", pattern="^(json|text)$")
    log_level: str = "INFO"
    # OpenTelemetry tracing (API → workflow → activities), off by default; spans go to an OTLP/HTTP collector.
    tracing_enabled: bool = False
    otlp_endpoint: str = "http://127.0.0.1:4318/v1/traces"
    service_name: str = "icpflow"
    # Where the worker exposes the Temporal SDK's runtime metrics for Prometheus ("host:port"; unset = off).
    worker_metrics_address: str | None = None

    document_store_path: Path = Field(default=Path(".data/documents"))
    calendar_data_path: Path | None = None
    http_timeout_seconds: float = 10.0
    # The longest a caller (the API, the CLI with --direct) waits for an order to answer an action (an update).
    action_timeout_seconds: float = Field(default=30.0, gt=0, description="longest wait for an order's answer")


S = TypeVar("S", bound=BaseSettings)


class ConfigError(ValueError):
    """The environment's configuration is invalid; the message names each variable and what is expected."""


def load(cls: type[S]) -> S:
    """``cls()`` from the environment, with errors that name the ``ICPFLOW_*`` variable, not the Python field."""
    try:
        return cls()
    except ValidationError as err:
        prefix = str(cls.model_config.get("env_prefix", ""))
        lines = []
        for e in err.errors():
            field = str(e["loc"][0]) if e["loc"] else "?"
            got = e.get("input")
            shown = "(secret)" if "token" in field or "key" in field or "password" in field else repr(got)
            lines.append(f"{prefix}{field.upper()}: {e['msg']} (got {shown})")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load(Settings)


def masked(settings: BaseSettings) -> dict[str, str]:
    """The effective configuration as ``ICPFLOW_*`` variables, secrets and passwords in URLs masked."""
    prefix = str(settings.model_config.get("env_prefix", ""))
    shown: dict[str, str] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            text = "********" if value.get_secret_value() else ""
        elif value is None:
            text = ""
        elif isinstance(value, BaseModel | dict | list):
            text = "********" if "token" in name else str(value)
        else:
            text = str(value)
        if "://" in text and "@" in text:
            scheme, rest = text.split("://", 1)
            credentials, host = rest.rsplit("@", 1)
            user = credentials.split(":", 1)[0]
            text = f"{scheme}://{user}:********@{host}" if ":" in credentials else text
        shown[f"{prefix}{name.upper()}"] = text
    return shown
