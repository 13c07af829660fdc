"""Login, refresh, the caller's own user and personal API tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from timetracking.projects.v1 import projects_pb2 as ppb

from .common import Input, Name, dt


class PasswordGrant(Input):
    grant_type: Literal["password"]
    email: Annotated[str, StringConstraints(min_length=3, max_length=320)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=256, strip_whitespace=False)]


class RefreshGrant(Input):
    grant_type: Literal["refresh_token"]
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=200)]


TokenRequest = Annotated[PasswordGrant | RefreshGrant, Field(discriminator="grant_type")]


class TokenOut(BaseModel):
    access_token: str = Field(description="JWT, valid for `expires_in` seconds (at most 15 minutes)")
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int
    refresh_token: str = Field(description="single use: each refresh returns a new one")
    refresh_expires_in: int


class RevokeIn(Input):
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class ApiTokenIn(Input):
    name: Annotated[Name, StringConstraints(max_length=100)]


class ApiTokenOut(BaseModel):
    token_id: str
    name: str
    prefix: str = Field(description="the first characters of the secret, to recognise it by")
    created_at: datetime

    @classmethod
    def from_pb(cls, t: ppb.ApiToken) -> ApiTokenOut:
        return cls(token_id=t.token_id, name=t.name, prefix=t.prefix, created_at=dt(t.created_at))


class ApiTokenCreated(ApiTokenOut):
    secret: str = Field(description="shown once; send it as `Authorization: Bearer <secret>`")
