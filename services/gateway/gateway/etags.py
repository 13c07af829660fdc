"""ETag / If-Match: an object's version is its entity tag ("<version>")."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Header

from .problems import HttpProblem

_TAG = re.compile(r'^(?:W/)?"(\d{1,18})"$')

IfMatch = Annotated[
    str | None,
    Header(
        max_length=100,
        description='The ETag of the version you edit, e.g. "3" (from GET). A stale one answers 412.',
    ),
]


def etag(version: int) -> str:
    return f'"{version}"'


def expected_version(if_match: str | None, *, required: bool) -> int:
    """The version If-Match names; 0 when absent and optional (= don't check)."""
    if if_match is None or if_match.strip() == "":
        if required:
            raise HttpProblem(
                428, "if_match_required", 'send If-Match with the ETag of the version you edit, e.g. "3"'
            )
        return 0
    match = _TAG.match(if_match.strip())
    if match is None or int(match.group(1)) < 1:
        raise HttpProblem(
            412,
            "precondition_failed",
            'If-Match must be one ETag from this API, e.g. "3"',
        )
    return int(match.group(1))


def check_current(expected: int, current: int) -> None:
    if expected and expected != current:
        raise HttpProblem(
            412,
            "precondition_failed",
            f"the object changed (now version {current}, you sent {expected}); reload and retry",
            headers={"ETag": etag(current)},
        )
