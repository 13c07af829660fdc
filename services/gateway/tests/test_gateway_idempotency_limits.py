"""Idempotency-Key (replay, different body, concurrent in-flight), rate limits, body size."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from gateway_testkit import World, iso, new_caller


def entry_body(world: World, days_ago: int, description: str = "idem") -> dict[str, str]:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=days_ago)
    return {
        "project_id": world.project_id,
        "description": description,
        "start_time": iso(start),
        "end_time": iso(start + timedelta(minutes=30)),
    }


async def count_entries(http: httpx.AsyncClient, world: World, description: str) -> int:
    page = await http.get("/v1/time-entries", headers=world.owner.headers, params={"limit": 200})
    return sum(1 for e in page.json()["data"] if e["description"] == description)


async def test_same_key_replays_the_first_response(http: httpx.AsyncClient, world: World) -> None:
    key = str(uuid.uuid4())
    headers = {**world.owner.headers, "Idempotency-Key": key}
    body = entry_body(world, 20, "replayed once")
    first = await http.post("/v1/time-entries", headers=headers, json=body)
    assert first.status_code == 201, first.text
    second = await http.post("/v1/time-entries", headers=headers, json=body)
    assert second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert second.headers["etag"] == first.headers["etag"]
    assert await count_entries(http, world, "replayed once") == 1

    # An error the request itself decided is replayed too (Stripe keeps the first result).
    conflict_key = {**world.owner.headers, "Idempotency-Key": str(uuid.uuid4())}
    overlapping = await http.post("/v1/time-entries", headers=conflict_key, json=body)
    assert overlapping.status_code == 422 and overlapping.json()["code"] == "entry_overlaps"
    again = await http.post("/v1/time-entries", headers=conflict_key, json=body)
    assert again.status_code == 422 and again.json() == overlapping.json()
    assert again.headers["idempotent-replayed"] == "true"

    # Keys are per caller: another user's identical key is a different key.
    outsider = await http.post(
        "/v1/timer/stop", headers={**world.outsider.headers, "Idempotency-Key": key}, json={}
    )
    assert outsider.status_code == 409 and "idempotent-replayed" not in outsider.headers


async def test_same_key_with_a_different_body_is_refused(http: httpx.AsyncClient, world: World) -> None:
    headers = {**world.owner.headers, "Idempotency-Key": str(uuid.uuid4())}
    first = await http.post("/v1/time-entries", headers=headers, json=entry_body(world, 21, "first body"))
    assert first.status_code == 201
    other = await http.post("/v1/time-entries", headers=headers, json=entry_body(world, 22, "second body"))
    assert other.status_code == 422, other.text
    assert other.json()["code"] == "idempotency_key_reused"
    elsewhere = await http.post("/v1/timer/start", headers=headers, json={"project_id": world.project_id})
    assert elsewhere.status_code == 422 and elsewhere.json()["code"] == "idempotency_key_reused"
    assert await count_entries(http, world, "second body") == 0


async def test_concurrent_requests_with_one_key_run_once(http: httpx.AsyncClient, world: World) -> None:
    """Invoice generation takes a while: retries fired while it runs get 409, and one invoice exists."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=40)
    for i in range(20):
        made = await http.post(
            "/v1/time-entries",
            headers=world.owner.headers,
            json={
                "project_id": world.project_id,
                "description": "to invoice",
                "start_time": iso(start + timedelta(hours=i)),
                "end_time": iso(start + timedelta(hours=i, minutes=45)),
            },
        )
        assert made.status_code == 201, made.text
    headers = {**world.manager.headers, "Idempotency-Key": str(uuid.uuid4())}
    body = {
        "project_id": world.project_id,
        "period_start": iso(start),
        "period_end": iso(start + timedelta(days=1)),
    }
    responses = await asyncio.gather(
        *(http.post("/v1/invoices", headers=headers, json=body) for _ in range(8))
    )
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}, [r.text for r in responses]
    assert 409 in statuses, statuses
    in_flight = next(r for r in responses if r.status_code == 409)
    assert in_flight.json()["code"] == "idempotency_request_in_progress"
    created = {r.json()["invoice_id"] for r in responses if r.status_code == 201}
    assert len(created) == 1
    # After it finished, the retry replays the one invoice.
    final = await http.post("/v1/invoices", headers=headers, json=body)
    assert final.status_code == 201 and final.json()["invoice_id"] in created
    listed = await http.get(
        "/v1/invoices", headers=world.manager.headers, params={"project_id": world.project_id}
    )
    period_invoices = [
        i for i in listed.json()["data"] if i["period_start"].startswith(start.date().isoformat())
    ]
    assert len(period_invoices) == 1


async def test_report_quota_answers_429_with_retry_after(http: httpx.AsyncClient, projects_api) -> None:
    caller = await new_caller(projects_api, http)
    params = {"from_date": "2024-01-01", "to_date": "2024-01-07"}
    statuses = []
    for _ in range(40):
        resp = await http.get("/v1/reports/timesheet", headers=caller.headers, params=params)
        statuses.append(resp.status_code)
        if resp.status_code == 429:
            assert int(resp.headers["retry-after"]) >= 1
            assert resp.json()["code"] == "rate_limited"
            break
    assert 429 in statuses, statuses
    # The general quota is separate: ordinary calls still work.
    assert (await http.get("/v1/me", headers=caller.headers)).status_code == 200


async def test_oversized_body_is_refused(http: httpx.AsyncClient, world: World) -> None:
    resp = await http.post(
        "/v1/time-entries",
        headers={**world.owner.headers, "content-type": "application/json"},
        content=b'{"description": "' + b"x" * 200_000 + b'"}',
    )
    assert resp.status_code == 413 and resp.json()["code"] == "body_too_large"
