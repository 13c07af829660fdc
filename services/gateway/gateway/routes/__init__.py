"""One router per resource group; `http_api.create_app` includes them all."""

from __future__ import annotations

from typing import Any

from ..schemas.common import Problem

_PROBLEM = {"model": Problem, "content": {"application/problem+json": {}}}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problem responses a route can give."""
    descriptions = {
        400: "the body is not JSON",
        401: "missing, invalid or expired credentials",
        403: "visible but not yours to change",
        404: "does not exist, or is outside your reach",
        409: "conflicts with the current state (or an in-flight Idempotency-Key)",
        412: "If-Match does not match the current version",
        413: "request body too large",
        422: "invalid fields (listed in `errors`), or an Idempotency-Key reused for another request",
        428: "If-Match is required",
        429: "rate limited; see Retry-After",
        503: "a backing service is unavailable; see Retry-After",
        504: "a backing service did not answer in time",
    }
    return {s: {**_PROBLEM, "description": descriptions.get(s, "error")} for s in statuses}


# Every authenticated route can answer these (a referenced object may be missing or out of reach).
COMMON = problems(400, 401, 403, 404, 409, 413, 422, 429, 503, 504)
