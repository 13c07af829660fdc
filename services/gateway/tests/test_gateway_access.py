"""Every route with an object id, as another ordinary user: 404, and nothing changes.

The table is checked against the running gateway's OpenAPI document, so a new route
with an id in its path fails here until it gets a row (and so, a test).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from gateway_testkit import Caller, World


@dataclass(frozen=True)
class Row:
    url: Callable[[World], str]
    body: Callable[[World], Any] | None = None
    headers: dict[str, str] | None = None
    reacher: Callable[[World], Caller] | None = None  # someone who does reach it (GETs): 200 or 303


def owner(w: World) -> Caller:
    return w.owner


def manager(w: World) -> Caller:
    return w.manager


def admin(w: World) -> Caller:
    return w.admin


IF_MATCH = {"If-Match": '"1"'}

ROUTES: dict[tuple[str, str], Row] = {
    ("DELETE", "/v1/me/api-tokens/{token_id}"): Row(lambda w: f"/v1/me/api-tokens/{w.api_token_id}"),
    ("GET", "/v1/users/{user_id}"): Row(lambda w: f"/v1/users/{w.owner.user_id}", reacher=owner),
    ("PATCH", "/v1/users/{user_id}"): Row(lambda w: f"/v1/users/{w.owner.user_id}", lambda w: {"name": "X"}),
    ("GET", "/v1/clients/{client_id}"): Row(lambda w: f"/v1/clients/{w.client_id}", reacher=admin),
    ("PATCH", "/v1/clients/{client_id}"): Row(
        lambda w: f"/v1/clients/{w.client_id}", lambda w: {"name": "X"}
    ),
    ("GET", "/v1/projects/{project_id}"): Row(lambda w: f"/v1/projects/{w.project_id}", reacher=owner),
    ("PATCH", "/v1/projects/{project_id}"): Row(
        lambda w: f"/v1/projects/{w.project_id}", lambda w: {"name": "Hijacked"}
    ),
    ("GET", "/v1/projects/{project_id}/tasks"): Row(
        lambda w: f"/v1/projects/{w.project_id}/tasks", reacher=owner
    ),
    ("POST", "/v1/projects/{project_id}/tasks"): Row(
        lambda w: f"/v1/projects/{w.project_id}/tasks", lambda w: {"name": "Sneaky"}
    ),
    ("GET", "/v1/tasks/{task_id}"): Row(lambda w: f"/v1/tasks/{w.task_id}", reacher=owner),
    ("PATCH", "/v1/tasks/{task_id}"): Row(lambda w: f"/v1/tasks/{w.task_id}", lambda w: {"name": "X"}),
    ("GET", "/v1/projects/{project_id}/members"): Row(
        lambda w: f"/v1/projects/{w.project_id}/members", reacher=owner
    ),
    ("POST", "/v1/projects/{project_id}/members"): Row(
        lambda w: f"/v1/projects/{w.project_id}/members", lambda w: {"user_id": w.outsider.user_id}
    ),
    ("PATCH", "/v1/projects/{project_id}/members/{user_id}"): Row(
        lambda w: f"/v1/projects/{w.project_id}/members/{w.owner.user_id}",
        lambda w: {"project_role": "MANAGER"},
    ),
    ("DELETE", "/v1/projects/{project_id}/members/{user_id}"): Row(
        lambda w: f"/v1/projects/{w.project_id}/members/{w.owner.user_id}"
    ),
    ("GET", "/v1/projects/{project_id}/rates"): Row(
        lambda w: f"/v1/projects/{w.project_id}/rates", reacher=manager
    ),
    ("PUT", "/v1/projects/{project_id}/rates/{user_id}"): Row(
        lambda w: f"/v1/projects/{w.project_id}/rates/{w.owner.user_id}", lambda w: {"hourly_rate": "1"}
    ),
    ("DELETE", "/v1/projects/{project_id}/rates/{user_id}"): Row(
        lambda w: f"/v1/projects/{w.project_id}/rates/{w.owner.user_id}"
    ),
    ("GET", "/v1/time-entries/{entry_id}"): Row(lambda w: f"/v1/time-entries/{w.entry_id}", reacher=manager),
    ("PATCH", "/v1/time-entries/{entry_id}"): Row(
        lambda w: f"/v1/time-entries/{w.entry_id}", lambda w: {"description": "mine now"}, IF_MATCH
    ),
    ("DELETE", "/v1/time-entries/{entry_id}"): Row(lambda w: f"/v1/time-entries/{w.entry_id}"),
    ("GET", "/v1/time-entries/{entry_id}/audit"): Row(
        lambda w: f"/v1/time-entries/{w.deleted_entry_id}/audit", reacher=owner
    ),
    ("GET", "/v1/reports/projects/{project_id}/summary"): Row(
        lambda w: f"/v1/reports/projects/{w.project_id}/summary", reacher=manager
    ),
    ("GET", "/v1/reports/clients/{client_id}/invoice-preview"): Row(
        lambda w: (
            f"/v1/reports/clients/{w.client_id}/invoice-preview"
            "?start=2020-01-01T00:00:00Z&end=2030-01-01T00:00:00Z"
        ),
        reacher=admin,
    ),
    ("GET", "/v1/invoices/{invoice_id}"): Row(lambda w: f"/v1/invoices/{w.invoice_id}", reacher=manager),
    ("POST", "/v1/invoices/{invoice_id}/send"): Row(lambda w: f"/v1/invoices/{w.invoice_id}/send"),
    ("POST", "/v1/invoices/{invoice_id}/mark-paid"): Row(
        lambda w: f"/v1/invoices/{w.invoice_id}/mark-paid", lambda w: {"paid_on": "2024-01-02"}
    ),
    ("POST", "/v1/invoices/{invoice_id}/void"): Row(lambda w: f"/v1/invoices/{w.invoice_id}/void"),
    ("GET", "/v1/invoices/{invoice_id}/pdf"): Row(lambda w: f"/v1/invoices/{w.invoice_id}/pdf"),
    ("GET", "/v1/system/pipeline-probes/{probe_id}"): Row(
        lambda w: f"/v1/system/pipeline-probes/{w.probe_id}"
    ),
}


async def test_every_route_with_an_id_has_a_row(http: httpx.AsyncClient) -> None:
    spec = (await http.get("/openapi.json")).json()
    with_ids = {
        (method.upper(), path) for path, ops in spec["paths"].items() if "{" in path for method in ops
    }
    missing = sorted(with_ids - set(ROUTES))
    assert not missing, f"routes with an object id but no 404 test: {missing}"
    assert not sorted(set(ROUTES) - with_ids), "rows for routes that no longer exist"


@pytest.mark.parametrize("route", sorted(ROUTES), ids=lambda r: f"{r[0]} {r[1]}")
async def test_another_ordinary_user_gets_404(
    route: tuple[str, str], http: httpx.AsyncClient, world: World
) -> None:
    method, _ = route
    row = ROUTES[route]
    kwargs: dict[str, Any] = {"headers": {**world.outsider.headers, **(row.headers or {})}}
    if row.body is not None:
        kwargs["json"] = row.body(world)
    resp = await http.request(method, row.url(world), **kwargs)
    assert resp.status_code == 404, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    if row.reacher is not None:
        ok = await http.request(method, row.url(world), headers=row.reacher(world).headers)
        assert ok.status_code in (200, 303), ok.text


async def test_nothing_changed_for_the_owner(http: httpx.AsyncClient, world: World) -> None:
    entry = await http.get(f"/v1/time-entries/{world.entry_id}", headers=world.owner.headers)
    assert entry.status_code == 200 and entry.json()["description"] == ""
    members = await http.get(f"/v1/projects/{world.project_id}/members", headers=world.owner.headers)
    assert world.owner.user_id in [m["user_id"] for m in members.json()["data"]]
    assert world.outsider.user_id not in [m["user_id"] for m in members.json()["data"]]
    tokens = await http.get("/v1/me/api-tokens", headers=world.owner.headers)
    assert world.api_token_id in [t["token_id"] for t in tokens.json()["data"]]
    project = await http.get(f"/v1/projects/{world.project_id}", headers=world.owner.headers)
    assert project.json()["name"] == "Website"


async def test_lists_show_only_what_is_in_reach(http: httpx.AsyncClient, world: World) -> None:
    mine = await http.get("/v1/time-entries", headers=world.outsider.headers)
    assert mine.status_code == 200 and mine.json()["data"] == []
    theirs = await http.get(
        "/v1/time-entries", headers=world.outsider.headers, params={"user_id": world.owner.user_id}
    )
    assert theirs.status_code == 404
    foreign_project = await http.get(
        "/v1/time-entries", headers=world.outsider.headers, params={"project_id": world.project_id}
    )
    assert foreign_project.status_code == 404
    projects = await http.get("/v1/projects", headers=world.outsider.headers)
    assert [p["project_id"] for p in projects.json()["data"]] == [world.other_project_id]
    # The project's manager sees the owner's entries there.
    managed = await http.get(
        "/v1/time-entries",
        headers=world.manager.headers,
        params={"project_id": world.project_id, "user_id": world.owner.user_id},
    )
    assert world.entry_id in [e["entry_id"] for e in managed.json()["data"]]
    for route in ("/v1/users", "/v1/clients"):
        assert (await http.get(route, headers=world.outsider.headers)).status_code == 403
    sheet = await http.get(
        "/v1/reports/timesheet",
        headers=world.outsider.headers,
        params={"user_id": world.owner.user_id, "from_date": "2024-01-01", "to_date": "2024-01-31"},
    )
    assert sheet.status_code == 404
