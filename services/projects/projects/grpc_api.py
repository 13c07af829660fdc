"""The projects service's gRPC edge: one transaction per call, committed once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeAlias

import grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from timetracking.projects.v1 import projects_pb2 as pb
from timetracking.projects.v1 import projects_pb2_grpc
from tt_common.db import transaction
from tt_common.money import format_decimal

from . import convert
from .config import ProjectsSettings
from .repository import Repository
from .service import Directory
from .tokens import ApiTokens

Ctx: TypeAlias = grpc.aio.ServicerContext


class ProjectsApi(projects_pb2_grpc.ProjectsServiceServicer):
    def __init__(self, settings: ProjectsSettings, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.settings = settings
        self.sessions = sessions

    @asynccontextmanager
    async def _directory(self, *, write: bool = True) -> AsyncIterator[Directory]:
        if write:
            async with transaction(self.sessions) as session:
                yield Directory(Repository(session), self.settings.topic_directory)
        else:
            async with self.sessions() as session:
                yield Directory(Repository(session), self.settings.topic_directory)

    # --- users -------------------------------------------------------------------------
    async def CreateUser(self, request: pb.CreateUserRequest, context: Ctx) -> pb.User:
        async with self._directory() as d:
            return convert.user(await d.create_user(request))

    async def GetUser(self, request: pb.GetUserRequest, context: Ctx) -> pb.User:
        async with self._directory(write=False) as d:
            return convert.user(await d.get_user(request.user_id))

    async def UpdateUser(self, request: pb.UpdateUserRequest, context: Ctx) -> pb.User:
        async with self._directory() as d:
            return convert.user(await d.update_user(request))

    async def ListUsers(self, request: pb.ListUsersRequest, context: Ctx) -> pb.ListUsersResponse:
        async with self._directory(write=False) as d:
            rows, token = await d.list_users(request)
        return pb.ListUsersResponse(users=[convert.user(u) for u in rows], next_page_token=token)

    async def SetPassword(self, request: pb.SetPasswordRequest, context: Ctx) -> pb.SetPasswordResponse:
        async with self._directory() as d:
            await d.set_password(request)
        return pb.SetPasswordResponse()

    async def VerifyCredentials(self, request: pb.VerifyCredentialsRequest, context: Ctx) -> pb.User:
        async with self._directory() as d:
            return convert.user(await d.verify_credentials(request.email, request.password))

    # --- personal API tokens -------------------------------------------------------------
    async def CreateApiToken(
        self, request: pb.CreateApiTokenRequest, context: Ctx
    ) -> pb.CreateApiTokenResponse:
        async with self._directory() as d:
            token, secret = await ApiTokens(d.repo).create(request)
            return pb.CreateApiTokenResponse(token=convert.api_token(token), secret=secret)

    async def ListApiTokens(self, request: pb.ListApiTokensRequest, context: Ctx) -> pb.ListApiTokensResponse:
        async with self._directory(write=False) as d:
            rows, page_token = await ApiTokens(d.repo).list(request)
        return pb.ListApiTokensResponse(
            tokens=[convert.api_token(t) for t in rows], next_page_token=page_token
        )

    async def RevokeApiToken(
        self, request: pb.RevokeApiTokenRequest, context: Ctx
    ) -> pb.RevokeApiTokenResponse:
        async with self._directory() as d:
            await ApiTokens(d.repo).revoke(request)
        return pb.RevokeApiTokenResponse()

    async def VerifyApiToken(
        self, request: pb.VerifyApiTokenRequest, context: Ctx
    ) -> pb.VerifyApiTokenResponse:
        async with self._directory(write=False) as d:
            user, token = await ApiTokens(d.repo).verify(request.secret)
            return pb.VerifyApiTokenResponse(user=convert.user(user), token_id=str(token.token_id))

    # --- clients -----------------------------------------------------------------------
    async def CreateClient(self, request: pb.CreateClientRequest, context: Ctx) -> pb.Client:
        async with self._directory() as d:
            return convert.client(await d.create_client(request))

    async def GetClient(self, request: pb.GetClientRequest, context: Ctx) -> pb.Client:
        async with self._directory(write=False) as d:
            return convert.client(await d.get_client(request.client_id))

    async def UpdateClient(self, request: pb.UpdateClientRequest, context: Ctx) -> pb.Client:
        async with self._directory() as d:
            return convert.client(await d.update_client(request))

    async def ListClients(self, request: pb.ListClientsRequest, context: Ctx) -> pb.ListClientsResponse:
        async with self._directory(write=False) as d:
            rows, token = await d.list_clients(request)
        return pb.ListClientsResponse(clients=[convert.client(c) for c in rows], next_page_token=token)

    # --- projects ------------------------------------------------------------------------
    async def CreateProject(self, request: pb.CreateProjectRequest, context: Ctx) -> pb.Project:
        async with self._directory() as d:
            return convert.project(await d.create_project(request))

    async def GetProject(self, request: pb.GetProjectRequest, context: Ctx) -> pb.Project:
        async with self._directory(write=False) as d:
            return convert.project(await d.get_project(request.project_id))

    async def UpdateProject(self, request: pb.UpdateProjectRequest, context: Ctx) -> pb.Project:
        async with self._directory() as d:
            return convert.project(await d.update_project(request))

    async def ListProjects(self, request: pb.ListProjectsRequest, context: Ctx) -> pb.ListProjectsResponse:
        async with self._directory(write=False) as d:
            rows, token = await d.list_projects(request)
        return pb.ListProjectsResponse(projects=[convert.project(p) for p in rows], next_page_token=token)

    # --- tasks -----------------------------------------------------------------------------
    async def CreateTask(self, request: pb.CreateTaskRequest, context: Ctx) -> pb.Task:
        async with self._directory() as d:
            return convert.task(await d.create_task(request))

    async def GetTask(self, request: pb.GetTaskRequest, context: Ctx) -> pb.Task:
        async with self._directory(write=False) as d:
            return convert.task(await d.get_task(request.task_id))

    async def UpdateTask(self, request: pb.UpdateTaskRequest, context: Ctx) -> pb.Task:
        async with self._directory() as d:
            return convert.task(await d.update_task(request))

    async def ListTasks(self, request: pb.ListTasksRequest, context: Ctx) -> pb.ListTasksResponse:
        async with self._directory(write=False) as d:
            rows, token = await d.list_tasks(request)
        return pb.ListTasksResponse(tasks=[convert.task(t) for t in rows], next_page_token=token)

    # --- members and rates --------------------------------------------------------------------
    async def AddProjectMember(self, request: pb.AddProjectMemberRequest, context: Ctx) -> pb.ProjectMember:
        async with self._directory() as d:
            return convert.member(await d.add_member(request))

    async def UpdateProjectMember(
        self, request: pb.UpdateProjectMemberRequest, context: Ctx
    ) -> pb.ProjectMember:
        async with self._directory() as d:
            return convert.member(await d.update_member(request))

    async def RemoveProjectMember(
        self, request: pb.RemoveProjectMemberRequest, context: Ctx
    ) -> pb.RemoveProjectMemberResponse:
        async with self._directory() as d:
            await d.remove_member(request)
        return pb.RemoveProjectMemberResponse()

    async def ListProjectMembers(
        self, request: pb.ListProjectMembersRequest, context: Ctx
    ) -> pb.ListProjectMembersResponse:
        async with self._directory(write=False) as d:
            rows, token = await d.list_members(request)
        return pb.ListProjectMembersResponse(members=[convert.member(m) for m in rows], next_page_token=token)

    async def SetProjectUserRate(
        self, request: pb.SetProjectUserRateRequest, context: Ctx
    ) -> pb.ProjectUserRate:
        async with self._directory() as d:
            return convert.rate(await d.set_rate(request))

    async def DeleteProjectUserRate(
        self, request: pb.DeleteProjectUserRateRequest, context: Ctx
    ) -> pb.DeleteProjectUserRateResponse:
        async with self._directory() as d:
            await d.delete_rate(request)
        return pb.DeleteProjectUserRateResponse()

    async def ListProjectUserRates(
        self, request: pb.ListProjectUserRatesRequest, context: Ctx
    ) -> pb.ListProjectUserRatesResponse:
        async with self._directory(write=False) as d:
            rates = await d.list_rates(request.project_id)
        return pb.ListProjectUserRatesResponse(rates=[convert.rate(r) for r in rates])

    # --- domain calls ---------------------------------------------------------------------------
    async def CheckAccess(self, request: pb.CheckAccessRequest, context: Ctx) -> pb.CheckAccessResponse:
        async with self._directory(write=False) as d:
            decision, user, project, role = await d.check_access(request)
        return pb.CheckAccessResponse(
            allowed=decision.allowed,
            reason=decision.reason,
            project_role=convert.PROJECT_ROLES[role] if role else pb.PROJECT_ROLE_UNSPECIFIED,
            user_role=convert.ROLES[user.role],
            project_status=convert.STATUSES[project.status],
        )

    async def ResolveBilling(
        self, request: pb.ResolveBillingRequest, context: Ctx
    ) -> pb.ResolveBillingResponse:
        async with self._directory(write=False) as d:
            rate, billable, project = await d.resolve_billing(request)
        return pb.ResolveBillingResponse(
            hourly_rate=format_decimal(rate.hourly_rate),
            currency=project.currency,
            is_billable=billable,
            rate_source=f"RATE_SOURCE_{rate.source.value}",
            billing_type=convert.BILLING_TYPES[project.billing_type],
        )
