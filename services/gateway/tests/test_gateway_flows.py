"""The main path a user walks: log in, timer, entries, edits with ETags, invoices, PDF."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
from gateway_testkit import World, iso, login


async def test_login_refresh_rotation_and_reuse_detection(http: httpx.AsyncClient, world: World) -> None:
    first = await login(http, world.owner.email)
    assert first.status_code == 200
    tokens = first.json()
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] <= 900

    me = await http.get("/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.status_code == 200 and me.json()["user_id"] == world.owner.user_id

    refreshed = await http.post(
        "/v1/auth/token", json={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.text
    second = refreshed.json()
    assert second["refresh_token"] != tokens["refresh_token"]

    # The old refresh token again: refused, and the whole family dies with it.
    reused = await http.post(
        "/v1/auth/token", json={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert reused.status_code == 401 and reused.headers["content-type"] == "application/problem+json"
    after = await http.post(
        "/v1/auth/token", json={"grant_type": "refresh_token", "refresh_token": second["refresh_token"]}
    )
    assert after.status_code == 401

    bad = await login(http, world.owner.email, "wrong password!")
    assert bad.status_code == 401 and bad.json()["code"] == "invalid_credentials"


async def test_bad_tokens_are_refused(http: httpx.AsyncClient, world: World) -> None:
    import jwt

    for headers in (
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Bearer " + jwt.encode({"sub": world.owner.user_id}, "x" * 40, algorithm="HS256")},
        {"Authorization": "Bearer " + jwt.encode({"sub": world.owner.user_id}, None, algorithm="none")},
        {"Authorization": "Bearer tt_" + "a" * 43},
    ):
        resp = await http.get("/v1/me", headers=headers)
        assert resp.status_code == 401, (headers, resp.text)
        assert resp.headers["content-type"] == "application/problem+json"
        assert resp.headers["www-authenticate"].startswith("Bearer")


async def test_api_token_authenticates_and_revocation_stops_it(http: httpx.AsyncClient, world: World) -> None:
    created = await http.post("/v1/me/api-tokens", headers=world.owner.headers, json={"name": "script"})
    assert created.status_code == 201
    secret = created.json()["secret"]
    me = await http.get("/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.status_code == 200 and me.json()["user_id"] == world.owner.user_id
    listed = await http.get("/v1/me/api-tokens", headers=world.owner.headers)
    assert created.json()["token_id"] in [t["token_id"] for t in listed.json()["data"]]
    assert "secret" not in listed.json()["data"][0]
    gone = await http.delete(f"/v1/me/api-tokens/{created.json()['token_id']}", headers=world.owner.headers)
    assert gone.status_code == 204
    assert (await http.get("/v1/me", headers={"Authorization": f"Bearer {secret}"})).status_code == 401


async def test_timer_start_stop_and_conflict(http: httpx.AsyncClient, world: World) -> None:
    h = world.owner.headers
    assert (await http.get("/v1/timer", headers=h)).json() == {"running": False, "entry": None}
    started = await http.post(
        "/v1/timer/start", headers=h, json={"project_id": world.project_id, "description": "x"}
    )
    assert started.status_code == 201, started.text
    assert started.json()["running"] is True and started.headers["etag"] == '"1"'
    again = await http.post("/v1/timer/start", headers=h, json={"project_id": world.project_id})
    assert again.status_code == 409 and again.json()["code"] == "timer_already_running"
    current = await http.get("/v1/timer", headers=h)
    assert current.json()["entry"]["entry_id"] == started.json()["entry_id"]
    stopped = await http.post("/v1/timer/stop", headers=h, json={})
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["discarded"] is True  # under 60 s
    none = await http.post("/v1/timer/stop", headers=h)
    assert none.status_code == 409


async def test_timer_on_a_project_outside_reach_is_not_found(http: httpx.AsyncClient, world: World) -> None:
    for project_id in (world.project_id, str(uuid.uuid4())):
        resp = await http.post(
            "/v1/timer/start", headers=world.outsider.headers, json={"project_id": project_id}
        )
        assert resp.status_code == 404, resp.text


async def test_entry_edit_needs_if_match_and_detects_stale_versions(
    http: httpx.AsyncClient, world: World
) -> None:
    h = world.owner.headers
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=10)
    created = await http.post(
        "/v1/time-entries",
        headers=h,
        json={
            "project_id": world.project_id,
            "start_time": iso(start),
            "end_time": iso(start + timedelta(hours=1)),
        },
    )
    assert created.status_code == 201, created.text
    entry = created.json()
    url = f"/v1/time-entries/{entry['entry_id']}"
    got = await http.get(url, headers=h)
    etag = got.headers["etag"]

    missing = await http.patch(url, headers=h, json={"description": "edited"})
    assert missing.status_code == 428 and missing.json()["code"] == "if_match_required"
    edited = await http.patch(
        url, headers={**h, "If-Match": etag}, json={"description": "edited", "tags": ["a"]}
    )
    assert edited.status_code == 200, edited.text
    assert edited.json()["description"] == "edited" and edited.headers["etag"] == '"2"'
    stale = await http.patch(url, headers={**h, "If-Match": etag}, json={"description": "lost update"})
    assert stale.status_code == 412
    assert (await http.get(url, headers=h)).json()["description"] == "edited"

    # Protected fields cannot be mass-assigned: refused by name, nothing changes.
    for field, value in (
        ("user_id", world.outsider.user_id),
        ("hourly_rate", "999"),
        ("invoice_id", str(uuid.uuid4())),
        ("is_billable", False),
        ("version", 99),
    ):
        resp = await http.patch(url, headers={**h, "If-Match": '"2"'}, json={field: value})
        assert resp.status_code == 422, (field, resp.text)
        assert resp.json()["errors"][0]["field"] == field
    audit = await http.get(f"{url}/audit", headers=h)
    assert [r["action"] for r in audit.json()["data"]] == ["created", "updated"]


async def test_invoice_lifecycle_and_pdf_redirect(http: httpx.AsyncClient, world: World) -> None:
    m = world.manager.headers
    url = f"/v1/invoices/{world.invoice_id}"
    invoice = (await http.get(url, headers=m)).json()
    assert invoice["status"] == "DRAFT" and invoice["total"] != "0.00"
    not_yet = await http.get(f"{url}/pdf", headers=m)
    assert not_yet.status_code in (404, 409)
    sent = await http.post(f"{url}/send", headers={**m, "Idempotency-Key": str(uuid.uuid4())})
    assert sent.status_code == 200, sent.text
    assert sent.json()["status"] == "SENT" and sent.json()["number"].startswith("INV-")
    pdf = await http.get(f"{url}/pdf", headers=m)
    assert pdf.status_code == 303, pdf.text
    async with httpx.AsyncClient(timeout=30) as plain:
        document = await plain.get(pdf.headers["location"])
    assert document.status_code == 200 and document.content.startswith(b"%PDF")
    listed = await http.get("/v1/invoices", headers=m, params={"project_id": world.project_id})
    assert world.invoice_id in [i["invoice_id"] for i in listed.json()["data"]]
