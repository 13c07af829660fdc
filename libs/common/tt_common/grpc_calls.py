"""Calling another service: a deadline on every call, and its status mapped back
to the domain error hierarchy, so the caller's own interceptor reports it.

A dependency that is down or too slow (UNAVAILABLE, DEADLINE_EXCEEDED, ...)
becomes `Unavailable` naming the dependency: the caller's client may retry.
An answer about the request itself (INVALID_ARGUMENT with its field
violations, NOT_FOUND, PERMISSION_DENIED, ...) is passed on as the same
domain error, so "task_id: not in this project" reaches the end user intact.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from .errors import (
    AlreadyExists,
    Conflict,
    DomainError,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)

R = TypeVar("R")

_TRANSIENT = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.DATA_LOSS,
}

_PASSED_ON: dict[grpc.StatusCode, type[DomainError]] = {
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.ABORTED: Conflict,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
}


def _metadata(exc: grpc.aio.AioRpcError) -> dict[str, str]:
    md = exc.trailing_metadata() or ()
    return {k: v for k, v in md if isinstance(v, str)}


def error_from_status(exc: grpc.aio.AioRpcError, dependency: str) -> DomainError:
    """The domain error a failed call to `dependency` stands for."""
    code, details = exc.code(), exc.details() or ""
    md = _metadata(exc)
    if code in _TRANSIENT:
        return Unavailable(f"{dependency} unavailable ({code.name.lower()}), retry later")
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        violations: list[FieldViolation] = []
        try:
            raw = json.loads(md.get("field-violations", "[]"))
            violations = [FieldViolation(str(v["field"]), str(v["reason"])) for v in raw]
        except (ValueError, TypeError, KeyError):
            violations = []
        return InvalidArgument(details, violations)
    cls = _PASSED_ON.get(code)
    if cls is None:
        return Unavailable(f"{dependency} failed ({code.name.lower()}), retry later")
    error = cls(details)
    if "error-code" in md:
        error.error_code = md["error-code"]
    return error


async def call(method: Callable[..., Awaitable[R]], request: Any, *, dependency: str, deadline_s: float) -> R:
    """`await method(request)` with a deadline; failures raised as domain errors."""
    try:
        return await method(request, timeout=deadline_s)
    except grpc.aio.AioRpcError as exc:
        raise error_from_status(exc, dependency) from exc
