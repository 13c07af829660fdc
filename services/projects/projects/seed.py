"""Create the first ADMIN, or a whole demo organisation, in the projects database.

    python -m projects.seed create-admin --email a@b.c --name "Ada" [--password ...]
    python -m projects.seed demo [--credentials-file path]

Both are idempotent: an existing email is left alone. Changes go through the
same rules and outbox as the API, so other services hear about them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from timetracking.projects.v1 import projects_pb2 as pb
from tt_common.db import create_engine, session_factory, transaction
from tt_common.errors import DomainError

from .repository import Repository
from .service import Directory

DEMO_USERS = [
    # email, name, role, default rate, timezone
    ("admin@demo.timetracking.dev", "Ada Admin", pb.ROLE_ADMIN, "", "Europe/Berlin"),
    ("manager@demo.timetracking.dev", "Max Manager", pb.ROLE_MANAGER, "110", "Europe/London"),
    ("alice@demo.timetracking.dev", "Alice Developer", pb.ROLE_EMPLOYEE, "90", "America/New_York"),
    ("bob@demo.timetracking.dev", "Bob Designer", pb.ROLE_EMPLOYEE, "", "Asia/Tokyo"),
]


def _url() -> str:
    url = os.environ.get("PROJECTS_DATABASE_URL")
    if not url:
        raise SystemExit("set PROJECTS_DATABASE_URL")
    return url


def _topic() -> str:
    return os.environ.get("PROJECTS_TOPIC_DIRECTORY", "timetracking.directory.v1")


async def create_admin(email: str, name: str, password: str) -> bool:
    """True when the admin was created, False when the email already exists."""
    engine = create_engine(_url())
    try:
        async with transaction(session_factory(engine)) as session:
            repo = Repository(session)
            if await repo.user_by_email(email):
                return False
            await Directory(repo, _topic()).create_user(
                pb.CreateUserRequest(
                    name=name, email=email, role=pb.ROLE_ADMIN, password=password, timezone="UTC"
                )
            )
            return True
    finally:
        await engine.dispose()


async def seed_demo() -> dict[str, str] | None:
    """The demo organisation; returns the passwords it set, or None if it already exists."""
    engine = create_engine(_url())
    try:
        async with transaction(session_factory(engine)) as session:
            repo = Repository(session)
            if await repo.user_by_email(DEMO_USERS[0][0]):
                return None
            d = Directory(repo, _topic())
            passwords: dict[str, str] = {}
            users = {}
            for address, name, role, rate, tz in DEMO_USERS:
                passwords[address] = secrets.token_urlsafe(12)
                users[address] = await d.create_user(
                    pb.CreateUserRequest(
                        name=name,
                        email=address,
                        role=role,
                        default_hourly_rate=rate,
                        timezone=tz,
                        password=passwords[address],
                    )
                )
            client = await d.create_client(
                pb.CreateClientRequest(
                    name="Acme GmbH",
                    currency="EUR",
                    billing_address="Hauptstrasse 1\n10115 Berlin\nGermany",
                    tax_rate="19",
                    payment_terms_days=14,
                )
            )
            website = await d.create_project(
                pb.CreateProjectRequest(
                    client_id=str(client.client_id),
                    name="Website relaunch",
                    billing_type=pb.BILLING_TYPE_HOURLY,
                    budget_hours="200",
                    budget_amount="20000",
                    default_hourly_rate="85",
                )
            )
            retainer = await d.create_project(
                pb.CreateProjectRequest(
                    client_id=str(client.client_id),
                    name="Support retainer",
                    billing_type=pb.BILLING_TYPE_FIXED,
                    budget_amount="5000",
                )
            )
            internal = await d.create_project(
                pb.CreateProjectRequest(
                    client_id=str(client.client_id),
                    name="Internal",
                    billing_type=pb.BILLING_TYPE_NON_BILLABLE,
                )
            )
            for name, billable in (("Design", None), ("Development", None), ("Meetings", False)):
                req = pb.CreateTaskRequest(project_id=str(website.project_id), name=name)
                if billable is not None:
                    req.is_billable = billable
                await d.create_task(req)
            memberships: list[tuple[Any, str, Any]] = [
                (website, "manager@demo.timetracking.dev", pb.PROJECT_ROLE_MANAGER),
                (website, "alice@demo.timetracking.dev", pb.PROJECT_ROLE_MEMBER),
                (website, "bob@demo.timetracking.dev", pb.PROJECT_ROLE_MEMBER),
                (retainer, "alice@demo.timetracking.dev", pb.PROJECT_ROLE_MEMBER),
                (internal, "alice@demo.timetracking.dev", pb.PROJECT_ROLE_MEMBER),
                (internal, "bob@demo.timetracking.dev", pb.PROJECT_ROLE_MEMBER),
            ]
            for project, address, role in memberships:
                await d.add_member(
                    pb.AddProjectMemberRequest(
                        project_id=str(project.project_id),
                        user_id=str(users[address].user_id),
                        project_role=role,
                    )
                )
            await d.set_rate(
                pb.SetProjectUserRateRequest(
                    project_id=str(website.project_id),
                    user_id=str(users["bob@demo.timetracking.dev"].user_id),
                    hourly_rate="75",
                )
            )
            return passwords
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m projects.seed", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    admin = sub.add_parser("create-admin", help="create the first ADMIN")
    admin.add_argument("--email", required=True)
    admin.add_argument("--name", required=True)
    admin.add_argument("--password", help="default: generated and printed once")
    demo = sub.add_parser("demo", help="a demo organisation with a client, projects, tasks and users")
    demo.add_argument(
        "--credentials-file", type=Path, help="where to keep the generated passwords (mode 0600)"
    )
    args = parser.parse_args(argv)

    try:
        return _run(args)
    except DomainError as exc:
        print(exc.message, file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.command == "create-admin":
        password = args.password or secrets.token_urlsafe(12)
        if asyncio.run(create_admin(args.email, args.name, password)):
            print(f"created ADMIN {args.email}" + ("" if args.password else f" with password {password}"))
        else:
            print(f"{args.email} already exists; nothing changed")
        return 0

    passwords = asyncio.run(seed_demo())
    if passwords is not None:
        lines = [f"{email}  {password}" for email, password in passwords.items()]
        if args.credentials_file:
            args.credentials_file.parent.mkdir(parents=True, exist_ok=True)
            args.credentials_file.write_text("\n".join(lines) + "\n")
            args.credentials_file.chmod(0o600)
        print("demo organisation created; logins (email  password):\n  " + "\n  ".join(lines))
    elif args.credentials_file and args.credentials_file.exists():
        print(
            "demo logins (email  password):\n  " + "\n  ".join(args.credentials_file.read_text().splitlines())
        )
    else:
        print("demo organisation already exists")
    return 0


if __name__ == "__main__":
    sys.exit(main())
