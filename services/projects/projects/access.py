"""Who may book time on, read, or manage a project (pure rules).

- Book time: a member of the project (any project role) or an ADMIN, and only
  on an ACTIVE project.
- Read: a member or an ADMIN (whose entries a member sees is the gateway's rule).
- Manage: a project MANAGER of that project, or an ADMIN.
A deactivated user may do none of these.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Purpose(StrEnum):
    BOOK_TIME = "BOOK_TIME"
    READ = "READ"
    MANAGE = "MANAGE"


@dataclass(frozen=True)
class AccessDecision:
    allowed: bool
    reason: str = ""


ALLOWED = AccessDecision(True)


def decide_access(
    *, purpose: Purpose, user_active: bool, user_role: str, project_status: str, project_role: str | None
) -> AccessDecision:
    if not user_active:
        return AccessDecision(False, "the user is deactivated")
    is_admin = user_role == "ADMIN"
    if purpose is Purpose.BOOK_TIME:
        if project_status != "ACTIVE":
            return AccessDecision(
                False, f"the project is {project_status}; time is booked on ACTIVE projects only"
            )
        if is_admin or project_role is not None:
            return ALLOWED
        return AccessDecision(False, "the user is not a member of the project")
    if purpose is Purpose.READ:
        if is_admin or project_role is not None:
            return ALLOWED
        return AccessDecision(False, "the user is not a member of the project")
    if is_admin or project_role == "MANAGER":
        return ALLOWED
    return AccessDecision(False, "only the project's managers and admins manage it")
