"""Rate and billability rules (pure functions, unit-tested branch by branch).

Rate priority: project-specific user rate > user default rate > project
default rate; with none set the rate is 0.00 (time is still recorded).
Billable: NON_BILLABLE project -> never; else the task's override if set;
else billable (the project default).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum


class RateSource(StrEnum):
    PROJECT_USER_RATE = "PROJECT_USER_RATE"
    USER_DEFAULT = "USER_DEFAULT"
    PROJECT_DEFAULT = "PROJECT_DEFAULT"
    NONE = "NONE"


class BillingType(StrEnum):
    HOURLY = "HOURLY"
    FIXED = "FIXED"
    NON_BILLABLE = "NON_BILLABLE"


@dataclass(frozen=True)
class ResolvedRate:
    hourly_rate: Decimal
    source: RateSource


def resolve_rate(
    project_user_rate: Decimal | None, user_default: Decimal | None, project_default: Decimal | None
) -> ResolvedRate:
    if project_user_rate is not None:
        return ResolvedRate(project_user_rate, RateSource.PROJECT_USER_RATE)
    if user_default is not None:
        return ResolvedRate(user_default, RateSource.USER_DEFAULT)
    if project_default is not None:
        return ResolvedRate(project_default, RateSource.PROJECT_DEFAULT)
    return ResolvedRate(Decimal("0.00"), RateSource.NONE)


def resolve_billable(billing_type: BillingType | str, task_override: bool | None) -> bool:
    if BillingType(billing_type) is BillingType.NON_BILLABLE:
        return False
    if task_override is not None:
        return task_override
    return True
