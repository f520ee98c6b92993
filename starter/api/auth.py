"""Bearer-token authentication and the role matrix.

A token is looked up by its sha256 (tokens are configured hashed, see :mod:`starter.api.config`); the caller is the
token's name and role. 401 when the token is missing or unknown, 403 when its role may not do what it asks.

The dashboard, opened in a browser, may also pass the token as ``?token=`` once (it is then kept in an HttpOnly
cookie) or in the cookie directly.

``python -m starter.api.auth NAME ROLE`` prints a new random token and the ``ICPFLOW_API_TOKENS`` entry for it.
"""

from __future__ import annotations

import hmac
import json
import secrets
import sys
from collections.abc import Awaitable, Callable, Mapping

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from models.order import Frozen
from starter.api.config import Role, TokenSpec, hash_token
from starter.api.errors import ApiError

COOKIE_NAME = "icpflow_token"


class Principal(Frozen):
    """Who is calling: the token's name (recorded as the actor of staff actions) and its role."""

    name: str
    role: Role


class TokenTable:
    def __init__(self, tokens: Mapping[str, TokenSpec]) -> None:
        self._by_hash = [(spec.sha256, Principal(name=name, role=spec.role)) for name, spec in tokens.items()]

    def authenticate(self, token: str | None) -> Principal:
        if not token:
            raise ApiError(401, "unauthorized", "a bearer token is required: send 'Authorization: Bearer <token>'")
        digest = hash_token(token)
        found: Principal | None = None
        # Compare against every entry in constant time: how long this takes says nothing about which one matched.
        for known, principal in self._by_hash:
            if hmac.compare_digest(known, digest):
                found = principal
        if found is None:
            raise ApiError(401, "unauthorized", "the bearer token is not valid")
        return found


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _check_role(principal: Principal, roles: tuple[Role, ...]) -> Principal:
    if principal.role not in roles:
        allowed = ", ".join(r.value for r in roles)
        raise ApiError(
            403,
            "forbidden",
            f"the {principal.role.value} role may not do this (allowed: {allowed})",
            {"role": principal.role.value, "allowed_roles": [r.value for r in roles]},
        )
    return principal


def _table(request: Request) -> TokenTable:
    table: TokenTable = request.app.state.tokens
    return table


# Declared as a security scheme, so the OpenAPI page at /docs offers "Authorize"; missing tokens are ours to refuse.
_bearer = HTTPBearer(
    auto_error=False, description="a configured API token (locally: dev-backend, dev-support, dev-viewer)"
)


def require(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller, who must hold one of ``roles`` (bearer token in the Authorization header)."""

    async def dependency(
        request: Request, credentials: HTTPAuthorizationCredentials | None = Security(_bearer)
    ) -> Principal:
        token = credentials.credentials if credentials is not None else None
        return _check_role(_table(request).authenticate(token), roles)

    return dependency


def require_in_browser(*roles: Role) -> Callable[[Request], Awaitable[Principal]]:
    """Like :func:`require`, but the token may also come from ``?token=`` or the ``icpflow_token`` cookie."""

    async def dependency(request: Request) -> Principal:
        token = bearer_token(request) or request.query_params.get("token") or request.cookies.get(COOKIE_NAME)
        return _check_role(_table(request).authenticate(token), roles)

    return dependency


READERS = (Role.BACKEND, Role.SUPPORT, Role.VIEWER)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in {r.value for r in Role}:
        print(f"usage: python -m starter.api.auth NAME {{{','.join(r.value for r in Role)}}}", file=sys.stderr)
        return 2
    name, role = argv
    token = secrets.token_urlsafe(32)
    print(f"token (give it to the caller, it is not stored): {token}")
    print("ICPFLOW_API_TOKENS entry:")
    print(json.dumps({name: {"role": role, "sha256": hash_token(token)}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
