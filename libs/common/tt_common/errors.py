"""The domain error hierarchy, mapped once to gRPC status codes.

Service code raises these; the gRPC error interceptor (tt_common.grpc_server)
turns them into statuses, and the gateway turns statuses into problem+json.
No handler sets a status code by hand.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import grpc


@dataclass(frozen=True)
class FieldViolation:
    """One bad field: which one, and why."""

    field: str
    reason: str


class DomainError(Exception):
    """Base of every error a caller is meant to see."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN
    error_code: str = "error"  # stable, machine-readable; ends up in problem+json

    def __init__(self, message: str, *, error_code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if error_code is not None:
            self.error_code = error_code

    def metadata(self) -> list[tuple[str, str]]:
        """Trailing metadata carrying the details the gateway needs."""
        return [("error-code", self.error_code)]


class InvalidArgument(DomainError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    error_code = "invalid_argument"

    def __init__(self, message: str, violations: list[FieldViolation] | None = None, **kw: str) -> None:
        super().__init__(message, **kw)
        self.violations = violations or []

    @classmethod
    def field(cls, field: str, reason: str) -> InvalidArgument:
        return cls(f"{field}: {reason}", [FieldViolation(field, reason)])

    def metadata(self) -> list[tuple[str, str]]:
        md = super().metadata()
        if self.violations:
            # JSON with ensure_ascii: gRPC metadata values must be printable ASCII.
            md.append(
                (
                    "field-violations",
                    json.dumps([{"field": v.field, "reason": v.reason} for v in self.violations]),
                )
            )
        return md


class NotFound(DomainError):
    code = grpc.StatusCode.NOT_FOUND
    error_code = "not_found"


class AlreadyExists(DomainError):
    code = grpc.StatusCode.ALREADY_EXISTS
    error_code = "already_exists"


class Conflict(DomainError):
    """A concurrent change won (stale version): retry after re-reading."""

    code = grpc.StatusCode.ABORTED
    error_code = "conflict"


class FailedPrecondition(DomainError):
    """The request is valid but the system is not in a state that allows it."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    error_code = "failed_precondition"


class PermissionDenied(DomainError):
    code = grpc.StatusCode.PERMISSION_DENIED
    error_code = "permission_denied"


class Unauthenticated(DomainError):
    code = grpc.StatusCode.UNAUTHENTICATED
    error_code = "unauthenticated"


class Unavailable(DomainError):
    """A dependency is down; the caller may retry later."""

    code = grpc.StatusCode.UNAVAILABLE
    error_code = "unavailable"


class ResourceExhausted(DomainError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    error_code = "resource_exhausted"
