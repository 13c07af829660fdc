"""Errors as problem+json (RFC 9457); gRPC status codes mapped to HTTP once, here.

Three sources of errors, one mapping:
- a failed gRPC call (`grpc.aio.AioRpcError`): its status code through GRPC_TO_HTTP;
- a domain error raised by the gateway itself (`tt_common.errors`): its gRPC code, same table;
- an HTTP-only condition (`HttpProblem`: 412, 413, 428, 429 ...) with its own status.
Every body carries a stable machine-readable `code`; validation errors list the fields.
"""

from __future__ import annotations

import json
from typing import Any

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tt_common.errors import DomainError, InvalidArgument
from tt_common.logging import get_logger

log = get_logger(__name__)

PROBLEM_JSON = "application/problem+json"

GRPC_TO_HTTP: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 422,
    grpc.StatusCode.OUT_OF_RANGE: 422,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.UNIMPLEMENTED: 501,
}

RETRY_AFTER_S = "5"

TITLES = {
    400: "Bad request",
    401: "Unauthenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    412: "Precondition failed",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Invalid request",
    428: "Precondition required",
    429: "Too many requests",
    500: "Internal error",
    501: "Not implemented",
    503: "Service unavailable",
    504: "Gateway timeout",
}


class HttpProblem(Exception):
    """A condition that exists only at the HTTP edge (412, 413, 428, 429, ...)."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        errors: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}
        self.errors = errors or []


def problem(
    status: int,
    detail: str,
    code: str,
    *,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    errors: list[dict[str, str]] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"https://timetracking.dev/problems/{code}",
        "title": title or TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "code": code,
    }
    if errors:
        body["errors"] = errors
    all_headers = dict(headers or {})
    if status in (503, 429):
        all_headers.setdefault("Retry-After", RETRY_AFTER_S)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=all_headers or None)


def http_status(code: grpc.StatusCode) -> int:
    return GRPC_TO_HTTP.get(code, 500)


def from_grpc_error(exc: grpc.aio.AioRpcError) -> JSONResponse:
    status = http_status(exc.code())
    metadata = exc.trailing_metadata() or ()
    code = next((v for k, v in metadata if k == "error-code"), None) or exc.code().name.lower()
    errors: list[dict[str, str]] = []
    for k, v in metadata:
        if k == "field-violations":
            try:
                errors = [{"field": str(e["field"]), "reason": str(e["reason"])} for e in json.loads(v)]
            except (ValueError, KeyError, TypeError):
                log.warning("unreadable field-violations metadata", value=str(v)[:200])
    detail = exc.details() or exc.code().name
    if status == 500:
        log.error("unmapped grpc error", grpc_code=exc.code().name, detail=detail)
        detail, code = "internal error", "internal"
    if exc.code() == grpc.StatusCode.UNAVAILABLE:
        detail = "a backing service is unavailable, retry later"
    if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
        detail = "a backing service did not answer in time"
    return problem(status, detail, code, errors=errors)


def from_domain_error(exc: DomainError) -> JSONResponse:
    status = http_status(exc.code)
    errors = (
        [{"field": v.field, "reason": v.reason} for v in exc.violations]
        if isinstance(exc, InvalidArgument)
        else []
    )
    return problem(status, exc.message, exc.error_code, errors=errors)


def from_http_problem(exc: HttpProblem) -> JSONResponse:
    return problem(exc.status, exc.detail, exc.code, headers=exc.headers, errors=exc.errors)


def response_for(exc: BaseException) -> JSONResponse | None:
    """The problem response for an error the API answers itself; None for a bug."""
    if isinstance(exc, HttpProblem):
        return from_http_problem(exc)
    if isinstance(exc, DomainError):
        return from_domain_error(exc)
    if isinstance(exc, grpc.aio.AioRpcError):
        return from_grpc_error(exc)
    return None


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def _error_field(error: Any) -> str:
    """The field a validation error is about; a discriminated union's tag is named too
    (pydantic reports a bad `grant_type` at the union itself, i.e. at "body")."""
    loc = tuple(error["loc"])
    discriminator = (error.get("ctx") or {}).get("discriminator")
    if error["type"] in ("union_tag_invalid", "union_tag_not_found") and discriminator:
        loc = (*loc, str(discriminator).strip("'"))
    return _field(loc)


def install(app: FastAPI) -> None:
    @app.exception_handler(grpc.aio.AioRpcError)
    async def _grpc(_: Request, exc: grpc.aio.AioRpcError) -> JSONResponse:
        return from_grpc_error(exc)

    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        return from_domain_error(exc)

    @app.exception_handler(HttpProblem)
    async def _http_problem(_: Request, exc: HttpProblem) -> JSONResponse:
        return from_http_problem(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": _error_field(e), "reason": e["msg"]} for e in exc.errors()]
        return problem(422, "the request has invalid fields", "invalid_argument", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        status = exc.status_code
        detail = str(exc.detail) if exc.detail else TITLES.get(status, "error")
        return problem(status, detail, f"http_{status}", headers=dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _bug(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", error=type(exc).__name__)
        return problem(500, "internal error", "internal")
