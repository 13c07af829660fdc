"""Errors as problem+json (RFC 9457); gRPC status codes mapped to HTTP once, here."""

from __future__ import annotations

import json
from typing import Any

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tt_common.logging import get_logger

log = get_logger(__name__)

PROBLEM_JSON = "application/problem+json"

GRPC_TO_HTTP: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 422,
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


def problem(status: int, title: str, detail: str, code: str, **extra: Any) -> JSONResponse:
    body = {
        "type": f"https://timetracking.dev/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    headers = {"Retry-After": RETRY_AFTER_S} if status in (503, 429) else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def from_grpc_error(exc: grpc.aio.AioRpcError) -> JSONResponse:
    status = GRPC_TO_HTTP.get(exc.code(), 500)
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
        detail = "internal error"
    if exc.code() == grpc.StatusCode.UNAVAILABLE:
        detail = "a backing service is unavailable, retry later"
    extra = {"errors": errors} if errors else {}
    return problem(status, exc.code().name.replace("_", " ").title(), detail, code, **extra)


def install(app: FastAPI) -> None:
    @app.exception_handler(grpc.aio.AioRpcError)
    async def _grpc(_: Request, exc: grpc.aio.AioRpcError) -> JSONResponse:
        return from_grpc_error(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"] if p != "body"), "reason": e["msg"]}
            for e in exc.errors()
        ]
        return problem(
            422, "Invalid request", "the request has invalid fields", "invalid_argument", errors=errors
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail), str(exc.detail), f"http_{exc.status_code}")
