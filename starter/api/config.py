"""The HTTP API's own settings, on top of :class:`models.settings.Settings` (same ``ICPFLOW_`` prefix).

Bearer tokens are configured as JSON in ``ICPFLOW_API_TOKENS``: a name per token (the name is the actor recorded in
the audit trail) with its role and the sha256 of the token, never the token itself::

    ICPFLOW_API_TOKENS='{"support-wang": {"role": "support", "sha256": "<hex sha256 of the token>"}}'

``python -m starter.api.auth support-wang support`` prints a fresh token and the entry to add.

Without ``ICPFLOW_API_TOKENS`` the API accepts the development tokens below, for local runs only (a warning is
logged at start): ``dev-backend``, ``dev-support`` and ``dev-viewer``, each named after itself.
"""

from __future__ import annotations

import hashlib
import re
from enum import StrEnum

from pydantic import Field, field_validator

from models.order import Frozen
from models.settings import Settings

MIB = 1024 * 1024


class Role(StrEnum):
    """Who calls the API. ``backend`` places orders and forwards what applicants and the regulator do; ``support``
    steers orders (abandon, resume, extend, initial review); ``viewer`` reads. Every role may read."""

    BACKEND = "backend"
    SUPPORT = "support"
    VIEWER = "viewer"


class TokenSpec(Frozen):
    role: Role
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="hex sha256 of the token, lower case")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


DEV_TOKENS: dict[str, TokenSpec] = {
    f"dev-{role.value}": TokenSpec(role=role, sha256=hash_token(f"dev-{role.value}")) for role in Role
}

# A token's name becomes SupportAction.actor / InitialReviewDecision.reviewer: the same limits apply.
TOKEN_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"


class ApiSettings(Settings):
    api_tokens: dict[str, TokenSpec] | None = Field(
        default=None, description="name -> {role, sha256}; None means the development tokens (local runs only)"
    )
    api_max_upload_bytes: int = Field(default=5 * MIB, ge=1)
    api_max_request_bytes: int = Field(
        default=1 * MIB, ge=1, description="largest body of any other request (an order, an action); uploads excepted"
    )
    api_dashboard_refresh_seconds: int = Field(default=15, ge=1, le=3600)
    api_stats_max_age_seconds: float = Field(
        default=15.0, ge=0, le=3600, description="GET /v1/stats answers a snapshot at most this old (0: fresh)"
    )
    # Origins allowed to call the codec server from a browser (the Temporal Web UI).
    api_codec_cors_origins: list[str] = Field(default=["http://127.0.0.1:8233", "http://localhost:8233"])

    @field_validator("api_tokens")
    @classmethod
    def _names(cls, tokens: dict[str, TokenSpec] | None) -> dict[str, TokenSpec] | None:
        for name in tokens or {}:
            if not re.match(TOKEN_NAME_PATTERN, name):
                raise ValueError(f"token name {name!r}: expected 1-64 of A-Z a-z 0-9 _ . @ - (it is the actor's name)")
        return tokens

    @property
    def uses_dev_tokens(self) -> bool:
        return self.api_tokens is None

    def tokens(self) -> dict[str, TokenSpec]:
        return DEV_TOKENS if self.api_tokens is None else self.api_tokens


def api_settings(settings: Settings) -> ApiSettings:
    """``settings`` as :class:`ApiSettings`: the API's own fields come from the environment when plain
    :class:`Settings` are given (the values given win for every shared field)."""
    if isinstance(settings, ApiSettings):
        return settings
    return ApiSettings(**settings.model_dump())
