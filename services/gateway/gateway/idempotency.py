"""Idempotency-Key on POSTs that create or transition something, with Stripe's semantics.

- The first response (status and body) to a key is stored for 24 h and
  replayed for every retry with the same key (header `Idempotent-Replayed: true`).
- The same key with a different request (another endpoint or another body)
  is refused: 422 `idempotency_key_reused`.
- While the first request is still running, a retry is refused: 409
  `idempotency_request_in_progress` (the client retries a little later).
- Keys are scoped to the caller: two users can use the same key.
- Only responses the request itself decided are stored: errors that say
  "try again" (5xx, 429) free the key, so a retry really runs again; a request
  that failed validation never reaches this code and stores nothing.

The in-flight marker expires after `idempotency_lock_s`, so a gateway that
dies mid-request frees its keys by itself.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from redis.asyncio import Redis
from redis.exceptions import RedisError

from tt_common.errors import Unavailable

from .auth import CurrentPrincipal, Principal
from .problems import HttpProblem, response_for

M = TypeVar("M", bound=BaseModel)

MAX_KEY_LENGTH = 255
REPLAYED = "Idempotent-Replayed"


def fingerprint(method: str, path: str, body: Any) -> str:
    canonical = json.dumps(jsonable_encoder(body), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


class IdempotencyStore:
    def __init__(self, redis: Redis, ttl_s: int, lock_s: int) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self.lock_s = lock_s

    @staticmethod
    def redis_key(principal: Principal, key: str) -> str:
        return f"idem:{principal.user_id}:{hashlib.sha256(key.encode()).hexdigest()}"

    async def begin(self, rkey: str, fp: str) -> JSONResponse | None:
        """None when this request owns the key now; the stored response for a replay."""
        marker = json.dumps({"state": "in_flight", "fp": fp})
        try:
            if await self.redis.set(rkey, marker, nx=True, ex=self.lock_s):
                return None
            raw = await self.redis.get(rkey)
        except RedisError as exc:
            raise Unavailable("idempotency store unavailable, retry later") from exc
        if raw is None:  # expired between the two calls: take it
            return await self.begin(rkey, fp)
        stored = json.loads(raw)
        if stored["fp"] != fp:
            raise HttpProblem(
                422,
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different request; use a new key",
            )
        if stored["state"] == "in_flight":
            raise HttpProblem(
                409,
                "idempotency_request_in_progress",
                "a request with this Idempotency-Key is still being processed; retry later",
                headers={"Retry-After": "1"},
            )
        return JSONResponse(
            stored["body"],
            status_code=stored["status"],
            media_type=stored["media_type"],
            headers={**stored.get("headers", {}), REPLAYED: "true"},
        )

    async def finish(self, rkey: str, fp: str, response: Response) -> None:
        keep = response.status_code < 500 and response.status_code != 429
        try:
            if not keep:
                await self.redis.delete(rkey)
                return
            headers = {k: v for k, v in response.headers.items() if k.lower() in ("location", "etag")}
            record = {
                "state": "done",
                "fp": fp,
                "status": response.status_code,
                "media_type": response.media_type,
                "headers": headers,
                "body": json.loads(bytes(response.body)),
            }
            await self.redis.set(rkey, json.dumps(record), ex=self.ttl_s)
        except RedisError:
            # The work is done; failing the response now would invite a duplicate. The marker
            # expires, after which a retry would run again: logged as the rare gap it is.
            from tt_common.logging import get_logger

            get_logger(__name__).warning("idempotent response not stored", key=rkey)


class Idempotency:
    """Per-request handle: `await idem.run(body, work)` runs `work` at most once per key."""

    def __init__(
        self, store: IdempotencyStore, principal: Principal, request: Request, key: str | None
    ) -> None:
        self.store = store
        self.principal = principal
        self.request = request
        self.key = key

    async def run(
        self,
        body: BaseModel | None,
        work: Callable[[], Awaitable[M]],
        *,
        status_code: int = 200,
        headers: Callable[[M], dict[str, str]] | None = None,
    ) -> Response:
        def respond(result: M) -> Response:
            # The model's own JSON, once: returning a Response skips FastAPI's second
            # validation and encoding of the same object (`response_model` still documents it).
            return Response(
                result.model_dump_json(),
                status_code=status_code,
                media_type="application/json",
                headers=headers(result) if headers else None,
            )

        if self.key is None:
            return respond(await work())
        fp = fingerprint(
            self.request.method,
            self.request.url.path,
            body.model_dump(mode="json") if body is not None else None,
        )
        rkey = self.store.redis_key(self.principal, self.key)
        replay = await self.store.begin(rkey, fp)
        if replay is not None:
            return replay
        response: Response
        try:
            response = respond(await work())
        except BaseException as exc:
            answered = response_for(exc) if isinstance(exc, Exception) else None
            if answered is None:
                await self.store.finish(rkey, fp, JSONResponse({}, status_code=500))
                raise
            response = answered
        await self.store.finish(rkey, fp, response)
        return response


async def idempotency(
    request: Request,
    principal: CurrentPrincipal,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=MAX_KEY_LENGTH,
            pattern=r"^[\x21-\x7e]+$",
            description="Any unique string (a UUID v4 is a good choice); retries with the same key "
            "replay the first response for 24 hours.",
        ),
    ] = None,
) -> Idempotency:
    return Idempotency(request.app.state.gw.idempotency, principal, request, idempotency_key)


IdempotencyHandle = Annotated[Idempotency, Depends(idempotency)]
