"""The gateway's request metrics: each request counted once, before its client has the answer."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import REGISTRY
from starlette.responses import JSONResponse

from gateway.metrics import HttpMetrics
from tt_common.metrics import MetricNames


class Route:
    path = "/v1/probe/{probe_id}"


def counted(code: str) -> float:
    labels = {"method": "GET", "route": Route.path, "code": code}
    return REGISTRY.get_sample_value(MetricNames.HTTP_SERVER_REQUESTS, labels) or 0.0


def answering(*bodies: bytes, status: int = 200, then_fail: bool = False) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope["route"] = Route()
        await send({"type": "http.response.start", "status": status, "headers": []})
        for i, body in enumerate(bodies):
            await send({"type": "http.response.body", "body": body, "more_body": i < len(bodies) - 1})
        if then_fail:
            raise RuntimeError("after the answer")

    return app


async def serve(app: Any) -> list[float]:
    """Run one GET through the middleware; the count as each message reached the client."""
    seen: list[float] = []

    async def send(message: dict[str, Any]) -> None:
        seen.append(counted("203"))

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    await HttpMetrics(app)({"type": "http", "method": "GET", "path": "/v1/probe/1"}, receive, send)
    return seen


async def test_a_request_is_counted_before_the_last_part_of_its_answer_leaves() -> None:
    before = counted("203")
    seen = await serve(answering(b"one", b"two", status=203))
    # The start and the first part went out uncounted; the last part finds the request counted.
    assert [n - before for n in seen] == [0, 0, 1]
    assert counted("203") - before == 1


async def test_a_plain_response_is_counted_before_it_leaves() -> None:
    # Starlette's responses send one body message without `more_body`.
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope["route"] = Route()
        await JSONResponse({"ok": True}, status_code=203)(scope, receive, send)

    before = counted("203")
    seen = await serve(app)
    assert [n - before for n in seen] == [0, 1]


async def test_a_request_that_fails_after_its_answer_is_counted_once() -> None:
    before = counted("203")
    with pytest.raises(RuntimeError):
        await serve(answering(b"all", status=203, then_fail=True))
    assert counted("203") - before == 1


async def test_a_request_that_fails_before_answering_is_counted_as_a_500() -> None:
    async def failing(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope["route"] = Route()
        raise RuntimeError("before any answer")

    before = counted("500")
    with pytest.raises(RuntimeError):
        await HttpMetrics(failing)({"type": "http", "method": "GET", "path": "/v1/probe/1"}, None, None)
    assert counted("500") - before == 1
