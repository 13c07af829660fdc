"""Request body size limit, as ASGI middleware (before anything parses the body)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .problems import HttpProblem, problem


class BodySizeLimit:
    """413 for a body over `max_bytes`: by Content-Length up front, or counted while reading it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = HttpProblem(
            413, "body_too_large", f"the request body is larger than {self.max_bytes} bytes"
        )
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await problem(413, too_large.detail, too_large.code)(scope, receive, send)
                    return
        # A body without Content-Length (chunked) is read here, before the app, up to the
        # limit: raising from inside the app's receive() would reach FastAPI's body parser,
        # which turns any error into a 400. Bodies are small (64 KiB), so buffering is cheap.
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_bytes:
                await problem(413, too_large.detail, too_large.code)(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        buffered: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return buffered
            return await receive()

        await self.app(scope, replay, send)
