"""Who may see and change what: the gateway's access rules.

The projects service's CheckAccess (book time / read / manage a project) is
the source of truth for project-level rights; the rules here combine it with
ownership. Anything outside the caller's reach is "not found" (404), never
"forbidden", so probing ids tells nothing. 403 is kept for objects the caller
can see but not change (a member reading a project they don't manage).

The pure functions take facts and return a decision; `Access` fetches the
facts (CheckAccess answers are cached for a few seconds per user and project).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import Enum

import grpc

from timetracking.projects.v1 import projects_pb2 as ppb
from tt_common.errors import NotFound, PermissionDenied

from .auth import Principal
from .clients import ServiceClients


class Purpose(Enum):
    BOOK_TIME = "BOOK_TIME"
    READ = "READ"
    MANAGE = "MANAGE"


_PURPOSES: dict[Purpose, ppb.AccessPurpose] = {
    Purpose.BOOK_TIME: ppb.ACCESS_PURPOSE_BOOK_TIME,
    Purpose.READ: ppb.ACCESS_PURPOSE_READ,
    Purpose.MANAGE: ppb.ACCESS_PURPOSE_MANAGE,
}


@dataclass(frozen=True)
class ProjectRights:
    exists: bool
    read: bool
    manage: bool


NO_RIGHTS = ProjectRights(exists=False, read=False, manage=False)


# --- pure rules -------------------------------------------------------------------------


def may_see_entry(principal: Principal, entry_user_id: str, rights: ProjectRights) -> bool:
    """Own entries; a project MANAGER the entries of their project; an ADMIN all."""
    return principal.is_admin or entry_user_id == principal.user_id or rights.manage


def may_change_entry(principal: Principal, entry_user_id: str, rights: ProjectRights) -> bool:
    """The same people who see an entry may change it (tracking still refuses invoiced ones)."""
    return may_see_entry(principal, entry_user_id, rights)


def may_see_user(principal: Principal, user_id: str) -> bool:
    return principal.is_admin or principal.user_id == user_id


def may_see_invoice(principal: Principal, rights: ProjectRights) -> bool:
    """Invoices belong to the project's managers and to admins."""
    return principal.is_admin or rights.manage


def may_see_project_report(principal: Principal, rights: ProjectRights) -> bool:
    return principal.is_admin or rights.manage


def may_see_timesheet(principal: Principal, user_id: str) -> bool:
    """A timesheet spans every project of its user, so only they and admins see it whole."""
    return principal.is_admin or principal.user_id == user_id


def visible_or_404(visible: bool, what: str) -> None:
    if not visible:
        raise NotFound(f"{what} not found")


def project_rights_or_raise(rights: ProjectRights, need: Purpose) -> None:
    """404 when the project is out of reach, 403 when it is visible but `need` is not allowed."""
    if not rights.read:
        raise NotFound("project not found")
    if need is Purpose.MANAGE and not rights.manage:
        raise PermissionDenied(
            "only the project's managers and admins may do this", error_code="not_project_manager"
        )


# --- fetching the facts ------------------------------------------------------------------


class Access:
    def __init__(self, clients: ServiceClients, cache_ttl_s: float) -> None:
        self.clients = clients
        self.ttl_s = cache_ttl_s
        self._cache: dict[tuple[str, str], tuple[float, ProjectRights]] = {}

    async def project(self, principal: Principal, project_id: str) -> ProjectRights:
        key = (principal.user_id, project_id)
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit and hit[0] > now:
            return hit[1]
        rights = await self._fetch(principal.user_id, project_id)
        if self.ttl_s > 0:
            if len(self._cache) > 50_000:
                self._cache.clear()
            self._cache[key] = (now + self.ttl_s, rights)
        return rights

    async def _check(self, user_id: str, project_id: str, purpose: Purpose) -> ppb.CheckAccessResponse | None:
        try:
            return await self.clients.read(
                self.clients.projects.CheckAccess,
                ppb.CheckAccessRequest(user_id=user_id, project_id=project_id, purpose=_PURPOSES[purpose]),
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                return None
            raise

    async def _fetch(self, user_id: str, project_id: str) -> ProjectRights:
        read = await self._check(user_id, project_id, Purpose.READ)
        if read is None:
            return NO_RIGHTS
        manage = read.allowed and (
            read.user_role == ppb.ROLE_ADMIN or read.project_role == ppb.PROJECT_ROLE_MANAGER
        )
        return ProjectRights(exists=True, read=read.allowed, manage=manage)

    async def require_project(self, principal: Principal, project_id: str, need: Purpose) -> ProjectRights:
        rights = await self.project(principal, project_id)
        project_rights_or_raise(rights, need)
        return rights

    def forget(self, project_id: str | None = None) -> None:
        """Drop cached decisions after a membership change made through this gateway."""
        if project_id is None:
            self._cache.clear()
        else:
            for key in [k for k in self._cache if k[1] == project_id]:
                self._cache.pop(key, None)
