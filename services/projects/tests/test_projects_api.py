"""The projects service over real gRPC, against its real PostgreSQL and Kafka."""

from __future__ import annotations

import asyncio
import json
import uuid

import grpc
import pytest
from aiokafka import AIOKafkaConsumer

from timetracking.events.v1 import directory_pb2
from timetracking.projects.v1 import projects_pb2 as pb
from timetracking.projects.v1 import projects_pb2_grpc

BOOK, READ, MANAGE = pb.ACCESS_PURPOSE_BOOK_TIME, pb.ACCESS_PURPOSE_READ, pb.ACCESS_PURPOSE_MANAGE


@pytest.fixture
async def api(running_services):
    async with grpc.aio.insecure_channel(running_services.config.grpc_target("projects")) as channel:
        yield projects_pb2_grpc.ProjectsServiceStub(channel)


def email() -> str:
    return f"user-{uuid.uuid4().hex[:12]}@example.com"


async def new_user(api, **kw) -> pb.User:
    kw.setdefault("name", "Ada Lovelace")
    kw.setdefault("email", email())
    kw.setdefault("timezone", "Europe/Berlin")
    return await api.CreateUser(pb.CreateUserRequest(**kw))


async def new_project(api, **kw) -> tuple[pb.Client, pb.Project]:
    client = await api.CreateClient(
        pb.CreateClientRequest(
            name=f"Client {uuid.uuid4().hex[:6]}", currency="EUR", tax_rate="19", payment_terms_days=14
        )
    )
    kw.setdefault("name", "Website relaunch")
    project = await api.CreateProject(pb.CreateProjectRequest(client_id=client.client_id, **kw))
    return client, project


async def rpc_error(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await call
    return exc.value


def violations(err: grpc.aio.AioRpcError) -> list[dict[str, str]]:
    md = dict(err.trailing_metadata() or ())
    return json.loads(md.get("field-violations", "[]"))


async def test_crud_round_trip_with_versions(api) -> None:
    user = await new_user(api, default_hourly_rate="95.50", role=pb.ROLE_MANAGER)
    assert user.version == 1 and user.role == pb.ROLE_MANAGER and user.default_hourly_rate == "95.50"
    assert (await api.GetUser(pb.GetUserRequest(user_id=user.user_id))).email == user.email

    updated = await api.UpdateUser(
        pb.UpdateUserRequest(user_id=user.user_id, expected_version=1, timezone="Asia/Tokyo")
    )
    assert updated.version == 2 and updated.timezone == "Asia/Tokyo"
    unchanged = await api.UpdateUser(pb.UpdateUserRequest(user_id=user.user_id, timezone="Asia/Tokyo"))
    assert unchanged.version == 2  # no change, no new version

    stale = await rpc_error(
        api.UpdateUser(pb.UpdateUserRequest(user_id=user.user_id, expected_version=1, name="X"))
    )
    assert stale.code() == grpc.StatusCode.ABORTED
    assert (await api.GetUser(pb.GetUserRequest(user_id=user.user_id))).name == "Ada Lovelace"

    client, project = await new_project(api, billing_type=pb.BILLING_TYPE_FIXED, budget_amount="12000")
    assert project.currency == "EUR"  # the client's currency by default
    assert project.status == pb.PROJECT_STATUS_ACTIVE and project.budget_amount == "12000.00"
    archived = await api.UpdateProject(
        pb.UpdateProjectRequest(project_id=project.project_id, status=pb.PROJECT_STATUS_ARCHIVED)
    )
    assert archived.status == pb.PROJECT_STATUS_ARCHIVED and archived.version == 2
    closed = await api.UpdateClient(pb.UpdateClientRequest(client_id=client.client_id, archived=True))
    assert closed.archived

    missing = await rpc_error(api.GetProject(pb.GetProjectRequest(project_id=str(uuid.uuid4()))))
    assert missing.code() == grpc.StatusCode.NOT_FOUND


async def test_cursor_pagination_visits_every_row_once(api) -> None:
    _, project = await new_project(api)
    names = {f"Task {i}" for i in range(7)}
    for name in sorted(names):
        await api.CreateTask(pb.CreateTaskRequest(project_id=project.project_id, name=name))
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await api.ListTasks(
            pb.ListTasksRequest(project_id=project.project_id, page_size=3, page_token=token)
        )
        seen.extend(t.name for t in page.tasks)
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert pages == 3 and sorted(seen) == sorted(names)

    bad = await rpc_error(
        api.ListTasks(pb.ListTasksRequest(project_id=project.project_id, page_token="garbage!"))
    )
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT and violations(bad)[0]["field"] == "page_token"


async def test_filters_by_client_status_and_member(api) -> None:
    client, first = await new_project(api, name="Alpha")
    second = await api.CreateProject(pb.CreateProjectRequest(client_id=client.client_id, name="Beta"))
    await api.UpdateProject(
        pb.UpdateProjectRequest(project_id=second.project_id, status=pb.PROJECT_STATUS_COMPLETED)
    )
    user = await new_user(api)
    await api.AddProjectMember(pb.AddProjectMemberRequest(project_id=first.project_id, user_id=user.user_id))

    by_client = await api.ListProjects(pb.ListProjectsRequest(client_id=client.client_id))
    assert {p.name for p in by_client.projects} == {"Alpha", "Beta"}
    active = await api.ListProjects(
        pb.ListProjectsRequest(client_id=client.client_id, statuses=[pb.PROJECT_STATUS_ACTIVE])
    )
    assert [p.name for p in active.projects] == ["Alpha"]
    mine = await api.ListProjects(pb.ListProjectsRequest(member_user_id=user.user_id))
    assert [p.project_id for p in mine.projects] == [first.project_id]


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.CreateUserRequest(name="A", email="not-an-email", timezone="UTC"), "email"),
        (pb.CreateUserRequest(name="A", email="a@example.com", timezone="Mars/Olympus"), "timezone"),
        (pb.CreateUserRequest(name="", email="a@example.com", timezone="UTC"), "name"),
        (pb.CreateUserRequest(name="A" * 201, email="a@example.com", timezone="UTC"), "name"),
        (
            pb.CreateUserRequest(name="A", email="a@example.com", default_hourly_rate="-1"),
            "default_hourly_rate",
        ),
        (
            pb.CreateUserRequest(name="A", email="a@example.com", default_hourly_rate="10.001"),
            "default_hourly_rate",
        ),
        (
            pb.CreateUserRequest(name="A", email="a@example.com", default_hourly_rate="1e400"),
            "default_hourly_rate",
        ),
        (
            pb.CreateUserRequest(name="A", email="a@example.com", default_hourly_rate="NaN"),
            "default_hourly_rate",
        ),
        (pb.CreateUserRequest(name="A", email="a@example.com", password="short"), "password"),
        (pb.CreateUserRequest(name="A", email="a@example.com", role=99), "role"),
        (pb.CreateClientRequest(name="C", currency="EURO"), "currency"),
        (pb.CreateClientRequest(name="C", currency="DEM"), "currency"),  # not legal tender any more
        (pb.CreateClientRequest(name="C", currency="EUR", tax_rate="101"), "tax_rate"),
        (pb.CreateClientRequest(name="C", currency="EUR", payment_terms_days=400), "payment_terms_days"),
        (pb.CreateProjectRequest(client_id="nope", name="P"), "client_id"),
        (pb.GetUserRequest(user_id="42"), "user_id"),
    ],
)
async def test_bad_input_names_the_field_and_writes_nothing(api, request_, field: str) -> None:
    method = {
        pb.CreateUserRequest: api.CreateUser,
        pb.CreateClientRequest: api.CreateClient,
        pb.CreateProjectRequest: api.CreateProject,
        pb.GetUserRequest: api.GetUser,
    }[type(request_)]
    err = await rpc_error(method(request_))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert [v["field"] for v in violations(err)] == [field]
    if isinstance(request_, pb.CreateUserRequest):
        found = await api.ListUsers(pb.ListUsersRequest(email=request_.email))
        assert list(found.users) == []


async def test_project_budgets_and_rates_are_validated_too(api) -> None:
    _, project = await new_project(api)
    for req, field in [
        (pb.UpdateProjectRequest(project_id=project.project_id, budget_hours="-5"), "budget_hours"),
        (pb.UpdateProjectRequest(project_id=project.project_id, budget_amount="12.345"), "budget_amount"),
        (
            pb.UpdateProjectRequest(project_id=project.project_id, default_hourly_rate="abc"),
            "default_hourly_rate",
        ),
        (pb.UpdateProjectRequest(project_id=project.project_id, status=42), "status"),
    ]:
        err = await rpc_error(api.UpdateProject(req))
        assert [v["field"] for v in violations(err)] == [field]
    assert (await api.GetProject(pb.GetProjectRequest(project_id=project.project_id))).version == 1

    outsider = await new_user(api)
    err = await rpc_error(
        api.SetProjectUserRate(
            pb.SetProjectUserRateRequest(
                project_id=project.project_id, user_id=outsider.user_id, hourly_rate="100"
            )
        )
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND  # no rate for a non-member
    rates = await api.ListProjectUserRates(pb.ListProjectUserRatesRequest(project_id=project.project_id))
    assert list(rates.rates) == []


async def test_email_is_unique_case_insensitively_even_under_a_race(api) -> None:
    address = email()
    results = await asyncio.gather(
        *(new_user(api, email=address.upper() if i % 2 else address) for i in range(12)),
        return_exceptions=True,
    )
    created = [r for r in results if isinstance(r, pb.User)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(created) == 1 and len(refused) == 11
    assert all(r.code() == grpc.StatusCode.ALREADY_EXISTS for r in refused)


async def test_check_access_for_member_manager_admin_outsider_and_archived(api) -> None:
    _, project = await new_project(api)
    member, manager, admin, outsider = (
        await new_user(api),
        await new_user(api),
        await new_user(api, role=pb.ROLE_ADMIN),
        await new_user(api),
    )
    await api.AddProjectMember(
        pb.AddProjectMemberRequest(project_id=project.project_id, user_id=member.user_id)
    )
    await api.AddProjectMember(
        pb.AddProjectMemberRequest(
            project_id=project.project_id, user_id=manager.user_id, project_role=pb.PROJECT_ROLE_MANAGER
        )
    )

    async def allowed(user: pb.User, purpose: int) -> bool:
        resp = await api.CheckAccess(
            pb.CheckAccessRequest(user_id=user.user_id, project_id=project.project_id, purpose=purpose)
        )
        return resp.allowed

    assert await allowed(member, BOOK) and await allowed(member, READ) and not await allowed(member, MANAGE)
    assert await allowed(manager, BOOK) and await allowed(manager, MANAGE)
    assert await allowed(admin, BOOK) and await allowed(admin, MANAGE)
    assert not await allowed(outsider, BOOK) and not await allowed(outsider, READ)

    await api.UpdateProject(
        pb.UpdateProjectRequest(project_id=project.project_id, status=pb.PROJECT_STATUS_ARCHIVED)
    )
    denied = await api.CheckAccess(
        pb.CheckAccessRequest(user_id=member.user_id, project_id=project.project_id, purpose=BOOK)
    )
    assert not denied.allowed and "ARCHIVED" in denied.reason
    assert await allowed(member, READ)  # history stays readable

    await api.UpdateUser(pb.UpdateUserRequest(user_id=admin.user_id, active=False))
    assert not await allowed(admin, READ)


async def test_resolve_billing_follows_the_priority_rules_end_to_end(api) -> None:
    _, project = await new_project(api, default_hourly_rate="80")
    user = await new_user(api)
    await api.AddProjectMember(
        pb.AddProjectMemberRequest(project_id=project.project_id, user_id=user.user_id)
    )
    task = await api.CreateTask(
        pb.CreateTaskRequest(project_id=project.project_id, name="Support", is_billable=False)
    )

    async def resolve(task_id: str = "") -> pb.ResolveBillingResponse:
        return await api.ResolveBilling(
            pb.ResolveBillingRequest(user_id=user.user_id, project_id=project.project_id, task_id=task_id)
        )

    first = await resolve()
    assert (first.hourly_rate, first.rate_source, first.is_billable) == (
        "80.00",
        pb.RATE_SOURCE_PROJECT_DEFAULT,
        True,
    )
    await api.UpdateUser(pb.UpdateUserRequest(user_id=user.user_id, default_hourly_rate="100"))
    assert (await resolve()).rate_source == pb.RATE_SOURCE_USER_DEFAULT
    await api.SetProjectUserRate(
        pb.SetProjectUserRateRequest(
            project_id=project.project_id, user_id=user.user_id, hourly_rate="120.50"
        )
    )
    third = await resolve()
    assert (third.hourly_rate, third.rate_source, third.currency) == (
        "120.50",
        pb.RATE_SOURCE_PROJECT_USER_RATE,
        "EUR",
    )
    assert (await resolve(task.task_id)).is_billable is False

    # A rate change answers new questions; it rewrites nothing already resolved.
    await api.SetProjectUserRate(
        pb.SetProjectUserRateRequest(project_id=project.project_id, user_id=user.user_id, hourly_rate="130")
    )
    assert third.hourly_rate == "120.50" and (await resolve()).hourly_rate == "130.00"

    await api.UpdateProject(
        pb.UpdateProjectRequest(project_id=project.project_id, billing_type=pb.BILLING_TYPE_NON_BILLABLE)
    )
    assert (await resolve()).is_billable is False

    _, other = await new_project(api)
    foreign = await api.CreateTask(pb.CreateTaskRequest(project_id=other.project_id, name="Elsewhere"))
    err = await rpc_error(resolve(foreign.task_id))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and violations(err)[0]["field"] == "task_id"


async def test_removing_a_member_removes_their_rate(api) -> None:
    _, project = await new_project(api)
    user = await new_user(api)
    await api.AddProjectMember(
        pb.AddProjectMemberRequest(project_id=project.project_id, user_id=user.user_id)
    )
    await api.SetProjectUserRate(
        pb.SetProjectUserRateRequest(project_id=project.project_id, user_id=user.user_id, hourly_rate="99")
    )
    await api.RemoveProjectMember(
        pb.RemoveProjectMemberRequest(project_id=project.project_id, user_id=user.user_id)
    )
    rates = await api.ListProjectUserRates(pb.ListProjectUserRatesRequest(project_id=project.project_id))
    assert list(rates.rates) == []


async def test_login_never_tells_which_part_was_wrong(api) -> None:
    password = "correct horse battery staple"
    user = await new_user(api, password=password)
    ok = await api.VerifyCredentials(pb.VerifyCredentialsRequest(email=user.email.upper(), password=password))
    assert ok.user_id == user.user_id

    wrong_password = await rpc_error(
        api.VerifyCredentials(pb.VerifyCredentialsRequest(email=user.email, password="x" * 12))
    )
    unknown_email = await rpc_error(
        api.VerifyCredentials(pb.VerifyCredentialsRequest(email=email(), password=password))
    )
    await api.UpdateUser(pb.UpdateUserRequest(user_id=user.user_id, active=False))
    deactivated = await rpc_error(
        api.VerifyCredentials(pb.VerifyCredentialsRequest(email=user.email, password=password))
    )
    for err in (wrong_password, unknown_email, deactivated):
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
        assert err.details() == "invalid email or password"


async def test_changes_are_published_to_kafka_through_the_outbox(api, running_services, infra) -> None:
    topic = running_services.env["PROJECTS_TOPIC_DIRECTORY"]
    user = await new_user(api)
    client, project = await new_project(api)
    await api.AddProjectMember(
        pb.AddProjectMemberRequest(project_id=project.project_id, user_id=user.user_id)
    )
    await api.SetProjectUserRate(
        pb.SetProjectUserRateRequest(project_id=project.project_id, user_id=user.user_id, hourly_rate="70")
    )
    await api.UpdateUser(pb.UpdateUserRequest(user_id=user.user_id, timezone="America/New_York"))

    wanted = {
        ("user_changed", user.user_id, 1),
        ("user_changed", user.user_id, 2),
        ("client_changed", client.client_id, 1),
        ("project_changed", project.project_id, 1),
        ("member_changed", f"{project.project_id}/{user.user_id}", 1),
        ("rate_changed", f"{project.project_id}/{user.user_id}", 1),
    }
    seen: set[tuple[str, str, int]] = set()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=infra.kafka_bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        async with asyncio.timeout(60):
            while not wanted <= seen:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for record in records:
                        event = directory_pb2.DirectoryEvent.FromString(record.value)
                        kind = event.WhichOneof("kind")
                        body = getattr(event, kind)
                        if kind in ("member_removed", "rate_removed"):
                            continue  # other tests' removals share the topic
                        if kind in ("member_changed", "rate_changed"):
                            ident = f"{body.project_id}/{body.user_id}"
                            assert record.key.decode() == body.project_id
                        else:
                            ident = getattr(body, kind.replace("_changed", "_id"))
                            assert record.key.decode() == ident
                        seen.add((kind, ident, body.version))
    finally:
        await consumer.stop()
