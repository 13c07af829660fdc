"""Who may book time on, read and manage a project."""

from __future__ import annotations

import pytest

from projects.access import Purpose, decide_access

BOOK, READ, MANAGE = Purpose.BOOK_TIME, Purpose.READ, Purpose.MANAGE


@pytest.mark.parametrize(
    ("purpose", "role", "status", "project_role", "allowed"),
    [
        (BOOK, "EMPLOYEE", "ACTIVE", "MEMBER", True),
        (BOOK, "EMPLOYEE", "ACTIVE", "MANAGER", True),
        (BOOK, "EMPLOYEE", "ACTIVE", None, False),
        (BOOK, "MANAGER", "ACTIVE", None, False),  # a manager books on their projects only
        (BOOK, "ADMIN", "ACTIVE", None, True),
        (BOOK, "EMPLOYEE", "COMPLETED", "MEMBER", False),
        (BOOK, "ADMIN", "ARCHIVED", None, False),  # nobody books on an archived project
        (READ, "EMPLOYEE", "ARCHIVED", "MEMBER", True),  # history stays readable
        (READ, "EMPLOYEE", "ACTIVE", None, False),
        (READ, "ADMIN", "ACTIVE", None, True),
        (MANAGE, "EMPLOYEE", "ACTIVE", "MEMBER", False),
        (MANAGE, "MANAGER", "ACTIVE", "MEMBER", False),
        (MANAGE, "EMPLOYEE", "ACTIVE", "MANAGER", True),
        (MANAGE, "ADMIN", "COMPLETED", None, True),
    ],
)
def test_access(purpose, role, status, project_role, allowed) -> None:
    decision = decide_access(
        purpose=purpose, user_active=True, user_role=role, project_status=status, project_role=project_role
    )
    assert decision.allowed is allowed
    assert bool(decision.reason) is (not allowed)


@pytest.mark.parametrize("purpose", list(Purpose))
def test_a_deactivated_user_may_do_nothing(purpose: Purpose) -> None:
    decision = decide_access(
        purpose=purpose, user_active=False, user_role="ADMIN", project_status="ACTIVE", project_role="MANAGER"
    )
    assert not decision.allowed
    assert "deactivated" in decision.reason
