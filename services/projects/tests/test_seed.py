"""The seed command: a demo organisation once, whose logins really work."""

from __future__ import annotations

import os
import subprocess
import sys

import grpc

from tests.support.infra import ROOT
from timetracking.projects.v1 import projects_pb2 as pb
from timetracking.projects.v1 import projects_pb2_grpc


def seed(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "projects.seed", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PROJECTS_DATABASE_URL": database_url},
    )


async def test_demo_seed_is_idempotent_and_its_logins_work(
    running_services, session_databases, tmp_path
) -> None:
    creds = tmp_path / "demo.txt"
    first = seed(session_databases["projects"], "demo", "--credentials-file", str(creds))
    assert first.returncode == 0, first.stderr
    assert "demo organisation created" in first.stdout
    assert oct(creds.stat().st_mode & 0o777) == "0o600"
    again = seed(session_databases["projects"], "demo", "--credentials-file", str(creds))
    assert again.returncode == 0 and "demo logins" in again.stdout

    email, password = creds.read_text().splitlines()[0].split()
    async with grpc.aio.insecure_channel(running_services.config.grpc_target("projects")) as channel:
        api = projects_pb2_grpc.ProjectsServiceStub(channel)
        admin = await api.VerifyCredentials(pb.VerifyCredentialsRequest(email=email, password=password))
        assert admin.role == pb.ROLE_ADMIN
        website = await api.ListProjects(pb.ListProjectsRequest(member_user_id=admin.user_id))
        assert list(website.projects) == []  # the admin needs no membership to manage
        alice = await api.ListUsers(pb.ListUsersRequest(email="alice@demo.timetracking.dev"))
        mine = await api.ListProjects(pb.ListProjectsRequest(member_user_id=alice.users[0].user_id))
        assert {p.name for p in mine.projects} == {"Website relaunch", "Support retainer", "Internal"}


def test_create_admin_is_idempotent_and_validates(session_databases) -> None:
    url = session_databases["projects"]
    first = seed(url, "create-admin", "--email", "root@example.org", "--name", "Root", "--password", "p" * 12)
    second = seed(url, "create-admin", "--email", "ROOT@example.org", "--name", "Root")
    assert first.returncode == 0 and "created ADMIN" in first.stdout
    assert second.returncode == 0 and "already exists" in second.stdout
    bad = seed(url, "create-admin", "--email", "nobody", "--name", "X", "--password", "p" * 12)
    assert bad.returncode == 2 and bad.stderr.startswith("email:")
    assert "Traceback" not in bad.stderr
