"""Rate priority and billability, branch by branch."""

from __future__ import annotations

from decimal import Decimal

import pytest

from projects.billing import BillingType, RateSource, resolve_billable, resolve_rate

D = Decimal


@pytest.mark.parametrize(
    ("project_user", "user_default", "project_default", "expected", "source"),
    [
        (D("150.00"), D("100.00"), D("80.00"), D("150.00"), RateSource.PROJECT_USER_RATE),
        (D("150.00"), None, None, D("150.00"), RateSource.PROJECT_USER_RATE),
        (
            D("0.00"),
            D("100.00"),
            D("80.00"),
            D("0.00"),
            RateSource.PROJECT_USER_RATE,
        ),  # zero is a rate, not "unset"
        (None, D("100.00"), D("80.00"), D("100.00"), RateSource.USER_DEFAULT),
        (None, D("100.00"), None, D("100.00"), RateSource.USER_DEFAULT),
        (None, None, D("80.00"), D("80.00"), RateSource.PROJECT_DEFAULT),
        (None, None, None, D("0.00"), RateSource.NONE),
    ],
)
def test_rate_priority(project_user, user_default, project_default, expected, source) -> None:
    resolved = resolve_rate(project_user, user_default, project_default)
    assert resolved.hourly_rate == expected
    assert resolved.source is source


@pytest.mark.parametrize(
    ("billing_type", "task_override", "billable"),
    [
        (BillingType.NON_BILLABLE, None, False),
        (BillingType.NON_BILLABLE, True, False),  # never, whatever the task says
        (BillingType.NON_BILLABLE, False, False),
        (BillingType.HOURLY, None, True),  # the project default
        (BillingType.HOURLY, True, True),
        (BillingType.HOURLY, False, False),  # the task's override wins
        (BillingType.FIXED, None, True),
        (BillingType.FIXED, False, False),
        ("HOURLY", None, True),  # stored names work too
    ],
)
def test_billability(billing_type, task_override, billable) -> None:
    assert resolve_billable(billing_type, task_override) is billable
