"""Malformed and oversized bodies on every route that takes one, as an ADMIN (who gets
furthest): 4xx problem+json naming the field, never a 5xx, and nothing written.

The table is /openapi.json itself: every POST, PUT and PATCH with a JSON body is
covered, so a new route is fuzzed here without a new row. Each route gets broken JSON,
the wrong top-level type, every property with the wrong type, every string property
far too long, deeply nested arrays, a body over GATEWAY_MAX_BODY_BYTES (declared and
streamed) and the wrong content type. Before and after, every list the admin can read
(and each object of the world) is fetched in full: they must be identical.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from gateway_testkit import World

pytestmark = pytest.mark.integration

MAX_BODY = 64 * 1024  # GATEWAY_MAX_BODY_BYTES's default, which the test stack runs with
HUGE = "x" * (MAX_BODY - 4096)  # under the body limit, far over any field's limit
DEEP = 20_000  # nesting levels: deeper than Python's recursion limit, still under MAX_BODY


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    url: str
    schema: dict[str, Any]  # the request body's schema, $refs resolved at the top

    @property
    def name(self) -> str:
        return f"{self.method} {self.path}"


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _properties(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    schema = _resolve(spec, schema)
    props: dict[str, dict[str, Any]] = {}
    for variant in schema.get("oneOf", []) + schema.get("anyOf", []):
        props.update(_properties(spec, variant))
    for name, prop in schema.get("properties", {}).items():
        props[name] = _resolve(spec, prop)
    return props


def _types(spec: dict[str, Any], schema: dict[str, Any]) -> set[str]:
    schema = _resolve(spec, schema)
    found = {schema["type"]} if "type" in schema else set()
    for variant in schema.get("anyOf", []) + schema.get("oneOf", []):
        found |= _types(spec, variant)
    if "const" in schema or "enum" in schema:
        found.add("string")
    return found


def _base(spec: dict[str, Any], schema: dict[str, Any], field: str) -> dict[str, Any]:
    """{} or, for a discriminated union, the tag of the variant that has `field`
    (without it, the only error is the missing tag)."""
    schema = _resolve(spec, schema)
    disc = schema.get("discriminator")
    if not disc:
        return {}
    for tag, ref in disc["mapping"].items():
        if field in _properties(spec, {"$ref": ref}) and field != disc["propertyName"]:
            return {disc["propertyName"]: tag}
    return {}


def _fill(path: str, w: World) -> str:
    ids = {
        "project_id": w.project_id,
        "user_id": w.owner.user_id,
        "client_id": w.client_id,
        "task_id": w.task_id,
        "entry_id": w.entry_id,
        "invoice_id": w.invoice_id,
        "token_id": w.api_token_id,
        "probe_id": w.probe_id,
    }
    for name, value in ids.items():
        path = path.replace("{" + name + "}", value)
    assert "{" not in path, f"no id for {path}: add it to _fill"
    return path


def body_routes(spec: dict[str, Any], w: World) -> list[Route]:
    routes = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            content = op.get("requestBody", {}).get("content", {})
            if method in ("post", "put", "patch") and "application/json" in content:
                schema = content["application/json"]["schema"]
                routes.append(Route(method.upper(), path, _fill(path, w), schema))
    return routes


async def send(http: httpx.AsyncClient, method: str, url: str, **kw: Any) -> httpx.Response:
    """One request, waiting out rate limits (429 is the limiter, not the verdict on the body)."""
    for _ in range(60):
        resp = await http.request(method, url, **kw)
        if resp.status_code != 429:
            return resp
        await asyncio.sleep(float(resp.headers.get("Retry-After", "1")))
    return resp


async def snapshot(http: httpx.AsyncClient, spec: dict[str, Any], w: World) -> dict[str, Any]:
    """Every list the admin can read (all pages) and each object of the world, in full."""
    seen: dict[str, Any] = {}
    headers = w.admin.headers
    for path, ops in spec["paths"].items():
        params = {p["name"] for p in ops.get("get", {}).get("parameters", [])}
        if "get" not in ops or "cursor" not in params:
            continue
        url, items, cursor = _fill(path, w), [], ""
        while True:
            resp = await send(http, "GET", url, headers=headers, params={"limit": 200, "cursor": cursor})
            assert resp.status_code == 200, (url, resp.text)
            body = resp.json()
            items += body["data"]
            cursor = body.get("next_cursor") or ""
            if not cursor:
                break
        seen[path] = items
    for path in (
        f"/v1/users/{w.owner.user_id}",
        f"/v1/clients/{w.client_id}",
        f"/v1/projects/{w.project_id}",
        f"/v1/projects/{w.project_id}/rates",
        f"/v1/tasks/{w.task_id}",
        f"/v1/time-entries/{w.entry_id}",
        f"/v1/invoices/{w.invoice_id}",
        "/v1/timer",
        "/v1/me",
    ):
        # Other tests (schemathesis as an admin) may have deleted one: 404 is a state too.
        resp = await send(http, "GET", path, headers=headers)
        assert resp.status_code in (200, 204, 404), (path, resp.text)
        seen[path] = (resp.status_code, resp.json() if resp.content else None)
    return seen


def assert_problem(resp: httpx.Response, route: Route, case: str, statuses: set[int]) -> dict[str, Any]:
    where = f"{route.name} [{case}]: {resp.status_code} {resp.text[:500]}"
    assert resp.status_code < 500, where
    assert resp.status_code in statuses, where
    assert resp.headers["content-type"].startswith("application/problem+json"), where
    body = resp.json()
    assert body["status"] == resp.status_code and body["code"], where
    return body


def assert_names(body: dict[str, Any], field: str, where: str) -> None:
    fields = [e["field"] for e in body.get("errors", [])]
    assert any(f == field or f.startswith(f"{field}.") or f.endswith(f".{field}") for f in fields), (
        f"{where}: {field!r} not among {fields}"
    )


@pytest.fixture(scope="module")
async def spec(http: httpx.AsyncClient) -> dict[str, Any]:
    resp = await http.get("/openapi.json")
    assert resp.status_code == 200
    return resp.json()


async def chunks(data: bytes, size: int = 8192) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def test_malformed_bodies_get_4xx_naming_the_field_and_write_nothing(
    http: httpx.AsyncClient, spec: dict[str, Any], world: World
) -> None:
    routes = body_routes(spec, world)
    assert len(routes) >= 15, [r.name for r in routes]  # the table is the API, not a hand-kept list
    before = await snapshot(http, spec, world)
    json_headers = {**world.admin.headers, "Content-Type": "application/json"}
    checked = 0
    for route in routes:
        props = _properties(spec, route.schema)

        async def post(content: bytes | AsyncIterator[bytes], headers: dict[str, str] = json_headers) -> Any:
            return await send(http, route.method, route.url, content=content, headers=headers)  # noqa: B023

        assert_problem(await post(b'{"name": "unterminated'), route, "broken JSON", {400, 422})
        assert_problem(await post(b"\xff\xfe{}"), route, "not UTF-8", {400, 422})
        assert_problem(await post(b"[1, 2, 3]"), route, "an array", {422})
        assert_problem(await post(b'"a string"'), route, "a string", {422})
        deep = json.dumps({next(iter(props), "x"): None})[:-5].encode() + b"[" * DEEP + b"]" * DEEP + b"}"
        assert_problem(await post(deep), route, "deep nesting", {400, 422})
        too_big = json.dumps({next(iter(props), "x"): "y" * (MAX_BODY + 1)}).encode()
        assert_problem(await post(too_big), route, "over the limit", {413})
        assert_problem(await post(chunks(too_big)), route, "over the limit, streamed", {413})
        text = {**world.admin.headers, "Content-Type": "text/plain"}
        assert_problem(await post(b"{}", text), route, "text/plain", {415, 422})
        form = {**world.admin.headers, "Content-Type": "application/x-www-form-urlencoded"}
        assert_problem(await post(b"a=1&b=2", form), route, "a form", {415, 422})
        checked += 9
        for field, prop in props.items():
            types = _types(spec, prop)
            if "object" not in types:
                resp = await post(
                    json.dumps({**_base(spec, route.schema, field), field: {"wrong": ["type"]}}).encode()
                )
                body = assert_problem(resp, route, f"{field}: an object", {422})
                assert_names(body, field, f"{route.name} {field}: an object")
                checked += 1
            if "string" in types or "array" in types:
                value: Any = HUGE if "string" in types else [HUGE]
                resp = await post(json.dumps({**_base(spec, route.schema, field), field: value}).encode())
                body = assert_problem(resp, route, f"{field}: huge", {422})
                assert_names(body, field, f"{route.name} {field}: huge")
                checked += 1
    assert checked > 150
    assert await snapshot(http, spec, world) == before


def _b64(raw: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


TAMPERED_CURSORS = [
    "not a cursor",
    _b64(b"\xff\xfe garbage"),
    _b64(b'{"a": 1}'),
    _b64(b'["2026-01-01T00:00:00", "00000000-0000-0000-0000-000000000000"]'),  # naive time
    _b64(b'["9999-12-31T23:00:00-05:00", "00000000-0000-0000-0000-000000000000"]'),  # overflows in UTC
    _b64('["²"]'.encode()),  # str.isdigit() says yes, int() says no
    _b64(b'["99999999999999999999999"]'),  # beyond bigint
    _b64(b'["x", "y", "z"]'),
]


async def test_tampered_cursors_on_every_list_get_4xx(
    http: httpx.AsyncClient, spec: dict[str, Any], world: World
) -> None:
    """Every GET with a `cursor` parameter, from /openapi.json: a forged cursor is a 4xx."""
    lists = [
        path for path, ops in spec["paths"].items() if "cursor" in str(ops.get("get", {}).get("parameters"))
    ]
    assert len(lists) >= 8, lists
    for path in lists:
        url = _fill(path, world)
        if path == "/v1/time-entries/{entry_id}/audit":
            url = f"/v1/time-entries/{world.extra['invoiced_entry_id']}/audit"  # one that is never deleted
        for cursor in TAMPERED_CURSORS:
            resp = await send(http, "GET", url, headers=world.admin.headers, params={"cursor": cursor})
            route = Route("GET", path, url, {})
            body = assert_problem(resp, route, f"cursor {cursor!r}", {400, 422})
            fields = {e["field"] for e in body.get("errors", [])}
            assert fields & {"cursor", "page_token"}, f"{path} cursor {cursor!r}: {body}"
