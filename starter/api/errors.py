"""Every error the API answers is JSON ``{code, message, details}``: a machine code, a sentence for people, and
whatever a caller needs to act (the existing order, each invalid field with its rule id and fix).

Request-shape errors (422) list every problem at once, each with the field path, the ``loc`` FastAPI reports, the
rule id (R-FMT-1 unless a check names another) and the fix when one is known.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.service import RPCError, RPCStatusCode

from models.state import Violation
from starter.client import (
    ActionRefused,
    ActionTimeout,
    OrderConflict,
    OrderError,
    OrderNotFound,
    WorkersUnavailable,
)

log = logging.getLogger("icpflow.api")

FORMAT_RULE = "R-FMT-1"
_RULE_IN_MESSAGE = re.compile(r"\b(R-[A-Z]+-\d+)\b")


class ErrorBody(BaseModel):
    """The body of every error response."""

    code: str = Field(examples=["action_refused"])
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class FieldError(BaseModel):
    """One invalid field of a request (422)."""

    field: str = Field(examples=["record.services[0].person_in_charge.mobile"])
    loc: list[str | int]
    rule_id: str = FORMAT_RULE
    message: str
    fix: str = ""


class ApiError(Exception):
    """An error the API answers as it is."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}


def invalid_request(errors: Sequence[FieldError]) -> ApiError:
    fields = ", ".join(dict.fromkeys(e.field for e in errors))
    return ApiError(
        422,
        "invalid_request",
        f"{len(errors)} invalid field(s): {fields}",
        {"errors": [e.model_dump() for e in errors]},
    )


def field_path(loc: Iterable[str | int]) -> str:
    """``("record", "services", 0, "mobile")`` → ``record.services[0].mobile`` (the path style of violations)."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def from_violation(v: Violation, location: str = "body") -> FieldError:
    loc: list[str | int] = [location]
    for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", v.field):
        loc.append(int(index) if index else name)
    return FieldError(field=v.field, loc=loc, rule_id=v.rule_id, message=v.message, fix=v.fix)


def from_pydantic(errors: Sequence[Any]) -> list[FieldError]:
    found: list[FieldError] = []
    for err in errors:
        loc = [p if isinstance(p, int) else str(p) for p in err.get("loc", ())]
        # body/query/path/header/cookie: where it came from; the rest is the field.
        inside = loc[1:] if loc and loc[0] in ("body", "query", "path", "header", "cookie") else loc
        message = str(err.get("msg", "invalid"))
        if unreadable := _unreadable_body(err):
            inside = []  # the body as a whole: a JSON decode error's loc ends with a character position, not a field
            message = unreadable
        rule = _RULE_IN_MESSAGE.search(message)
        found.append(
            FieldError(
                field=field_path(inside) or str(loc[0] if loc else "body"),
                loc=loc,
                rule_id=rule.group(1) if rule else FORMAT_RULE,
                message=message,
                fix=_fix(err),
            )
        )
    return found


def _unreadable_body(err: Any) -> str:
    """Why the body as a whole could not be read as JSON, or "" when it could."""
    loc = tuple(err.get("loc", ()))
    if err.get("type") == "json_invalid":
        where = f" (at character {loc[1]})" if len(loc) > 1 else ""
        return f"the body is not valid JSON: {(err.get('ctx') or {}).get('error', 'decode error')}{where}"
    if loc == ("body",) and isinstance(err.get("input"), bytes):
        return "the body was not read as JSON: its Content-Type is not application/json"
    return ""


def _fix(err: Any) -> str:
    kind = err.get("type", "")
    ctx = err.get("ctx") or {}
    if _unreadable_body(err):
        return "send one JSON object, with the header Content-Type: application/json"
    if kind == "missing":
        return "add this field"
    if kind == "extra_forbidden":
        return "remove this field (unknown fields are refused, so a typo is not silently dropped)"
    if kind == "enum" and "expected" in ctx:
        return f"expected {ctx['expected']}"
    if kind == "string_pattern_mismatch" and "pattern" in ctx:
        return f"expected a value matching {ctx['pattern']}"
    return ""


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the error codes an endpoint may answer."""
    descriptions = {
        400: "the body could not be read: not UTF-8, or a broken multipart form",
        401: "no bearer token, or an unknown one",
        403: "the token's role may not do this",
        404: "no such order",
        409: "refused: see the error's code",
        413: "the request body (or the uploaded file) is too large",
        415: "the file's type is not accepted",
        422: "invalid request: every invalid field with its rule id",
        503: "a dependency (Temporal, the database, a worker) is unreachable",
        504: "the order did not answer in time; the action may still be applied",
    }
    return {code: {"model": ErrorBody, "description": descriptions[code]} for code in codes}


def error_response(status: int, code: str, message: str, details: dict[str, Any] | None = None, **kw: Any) -> Any:
    body = ErrorBody(code=code, message=message, details=details or {})
    return JSONResponse(body.model_dump(mode="json"), status_code=status, **kw)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def install(app: FastAPI, *, extra_422: Any = None) -> None:
    """Register the handlers. ``extra_422(request, body)`` may return more FieldErrors for a request whose shape is
    invalid (the order endpoint adds identifier checks on the raw body, so every invalid field is listed at once)."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Any:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return error_response(exc.status, exc.code, exc.message, exc.details, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Any:
        errors = from_pydantic(exc.errors())
        if extra_422 is not None:
            more: list[FieldError] = extra_422(request, exc.body)
            # A field both checks flag is reported once, by the check that knows the fix.
            flagged = {e.field for e in more}
            errors = [e for e in errors if e.field not in flagged] + more
        err = invalid_request(errors)
        return error_response(err.status, err.code, err.message, err.details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Any:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(OrderNotFound)
    async def _not_found(request: Request, exc: OrderNotFound) -> Any:
        return error_response(404, exc.code, str(exc))

    @app.exception_handler(OrderConflict)
    async def _conflict(request: Request, exc: OrderConflict) -> Any:
        return error_response(409, exc.code, str(exc), {"existing_order_id": exc.existing_order_id})

    @app.exception_handler(ActionRefused)
    async def _refused(request: Request, exc: ActionRefused) -> Any:
        return error_response(409, exc.code, str(exc))

    @app.exception_handler(ActionTimeout)
    async def _action_timeout(request: Request, exc: ActionTimeout) -> Any:
        return error_response(504, exc.code, str(exc))

    @app.exception_handler(WorkersUnavailable)
    async def _no_workers(request: Request, exc: WorkersUnavailable) -> Any:
        return error_response(503, exc.code, str(exc))

    @app.exception_handler(OrderError)
    async def _order_error(request: Request, exc: OrderError) -> Any:
        log.error("unexpected order error on %s %s: %s", request.method, request.url.path, exc)
        return error_response(500, exc.code, str(exc))

    @app.exception_handler(RPCError)
    async def _temporal(request: Request, exc: RPCError) -> Any:
        log.warning("Temporal call failed on %s %s: %s", request.method, request.url.path, exc)
        if exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            return error_response(503, "temporal_unavailable", "the workflow service is unreachable; retry later")
        if exc.status is RPCStatusCode.CANCELLED and "timeout" in exc.message.lower():
            # A query or update nobody answered: Temporal is up, but no worker serves the order's task queue.
            return error_response(
                503,
                WorkersUnavailable.code,
                "no icpflow worker answered in time: is one running? Retrying is safe (placing an order again "
                "answers the same order)",
            )
        return error_response(502, "temporal_error", f"the workflow service refused the call: {exc.message}")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Any:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "an unexpected error occurred; it has been logged")
