"""Personal API tokens over real gRPC: shown once, stored hashed, revocable, owner-scoped."""

from __future__ import annotations

import hashlib
import uuid

import grpc
import psycopg
import pytest

from projects.tokens import hash_secret, looks_like_token, new_secret
from timetracking.projects.v1 import projects_pb2 as pb
from timetracking.projects.v1 import projects_pb2_grpc


@pytest.fixture
async def api(running_services):
    async with grpc.aio.insecure_channel(running_services.config.grpc_target("projects")) as channel:
        yield projects_pb2_grpc.ProjectsServiceStub(channel)


async def new_user(api) -> pb.User:
    return await api.CreateUser(
        pb.CreateUserRequest(name="Token Owner", email=f"tok-{uuid.uuid4().hex[:10]}@example.com")
    )


async def rpc_error(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await call
    return exc.value


def test_secrets_are_random_prefixed_and_hashed_with_sha256() -> None:
    a, b = new_secret(), new_secret()
    assert a != b and a.startswith("tt_") and len(a) == 46 and looks_like_token(a)
    assert hash_secret(a) == hashlib.sha256(a.encode()).hexdigest()
    assert not looks_like_token("Bearer eyJ...") and not looks_like_token("tt_short")


async def test_create_verify_list_revoke(api, session_databases) -> None:
    user = await new_user(api)
    created = await api.CreateApiToken(pb.CreateApiTokenRequest(user_id=user.user_id, name="CI"))
    secret = created.secret
    assert secret.startswith("tt_") and created.token.prefix == secret[:9] and created.token.name == "CI"

    verified = await api.VerifyApiToken(pb.VerifyApiTokenRequest(secret=secret))
    assert verified.user.user_id == user.user_id and verified.token_id == created.token.token_id

    # Only the hash is stored: the secret appears nowhere in the database.
    with psycopg.connect(session_databases["projects"].replace("+psycopg", "")) as conn:
        stored = conn.execute(
            "SELECT token_hash FROM api_tokens WHERE token_id = %s", (created.token.token_id,)
        ).fetchone()
    assert stored == (hashlib.sha256(secret.encode()).hexdigest(),)

    listed = await api.ListApiTokens(pb.ListApiTokensRequest(user_id=user.user_id))
    assert [t.token_id for t in listed.tokens] == [created.token.token_id]

    # Someone else cannot revoke it (and learns nothing about it).
    other = await new_user(api)
    err = await rpc_error(
        api.RevokeApiToken(pb.RevokeApiTokenRequest(user_id=other.user_id, token_id=created.token.token_id))
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND
    await api.RevokeApiToken(pb.RevokeApiTokenRequest(user_id=user.user_id, token_id=created.token.token_id))
    err = await rpc_error(api.VerifyApiToken(pb.VerifyApiTokenRequest(secret=secret)))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert not (await api.ListApiTokens(pb.ListApiTokensRequest(user_id=user.user_id))).tokens


async def test_unknown_and_deactivated_tokens_get_one_answer(api) -> None:
    user = await new_user(api)
    created = await api.CreateApiToken(pb.CreateApiTokenRequest(user_id=user.user_id, name="laptop"))
    unknown = await rpc_error(api.VerifyApiToken(pb.VerifyApiTokenRequest(secret=new_secret())))
    garbage = await rpc_error(api.VerifyApiToken(pb.VerifyApiTokenRequest(secret="nope")))
    await api.UpdateUser(pb.UpdateUserRequest(user_id=user.user_id, active=False))
    deactivated = await rpc_error(api.VerifyApiToken(pb.VerifyApiTokenRequest(secret=created.secret)))
    for err in (unknown, garbage, deactivated):
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
        assert err.details() == "invalid API token"


async def test_bad_input_names_the_field(api) -> None:
    user = await new_user(api)
    err = await rpc_error(api.CreateApiToken(pb.CreateApiTokenRequest(user_id=user.user_id, name="")))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "name" in err.details()
    err = await rpc_error(api.CreateApiToken(pb.CreateApiTokenRequest(user_id=str(uuid.uuid4()), name="x")))
    assert err.code() == grpc.StatusCode.NOT_FOUND
