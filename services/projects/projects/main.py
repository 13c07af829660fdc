"""The projects service's entry point: gRPC API plus the outbox relay."""

from __future__ import annotations

from functools import partial

from timetracking.projects.v1 import projects_pb2, projects_pb2_grpc
from tt_common.db import engine_from_settings, ping, session_factory
from tt_common.grpc_server import GrpcServiceRunner, run_service
from tt_common.outbox import run_relay

from .config import ProjectsSettings
from .grpc_api import ProjectsApi
from .models import outbox


async def serve(settings: ProjectsSettings) -> None:
    engine = engine_from_settings(settings)
    sessions = session_factory(engine)
    runner = GrpcServiceRunner(settings)
    runner.add_servicer(
        projects_pb2_grpc.add_ProjectsServiceServicer_to_server,
        ProjectsApi(settings, sessions),
        projects_pb2.DESCRIPTOR.services_by_name["ProjectsService"].full_name,
    )
    runner.add_worker(
        "outbox-relay",
        partial(
            run_relay,
            settings,
            sessions,
            outbox,
            topics=[settings.topic_directory],
            client_id="projects-outbox",
        ),
    )
    runner.add_readiness_check("postgresql", partial(ping, engine))
    runner.on_shutdown(engine.dispose)
    await runner.serve()


def main() -> None:
    run_service(ProjectsSettings, serve)


if __name__ == "__main__":
    main()
