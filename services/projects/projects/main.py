"""The projects service's entry point."""

from __future__ import annotations

from functools import partial

from timetracking.projects.v1 import projects_pb2, projects_pb2_grpc
from tt_common.db import engine_from_settings, ping
from tt_common.grpc_server import GrpcServiceRunner, run_service

from .config import ProjectsSettings
from .grpc_api import ProjectsApi


async def serve(settings: ProjectsSettings) -> None:
    engine = engine_from_settings(settings)
    runner = GrpcServiceRunner(settings)
    runner.add_servicer(
        projects_pb2_grpc.add_ProjectsServiceServicer_to_server,
        ProjectsApi(),
        projects_pb2.DESCRIPTOR.services_by_name["ProjectsService"].full_name,
    )
    runner.add_readiness_check("postgresql", partial(ping, engine))
    runner.on_shutdown(engine.dispose)
    await runner.serve()


def main() -> None:
    run_service(ProjectsSettings, serve)


if __name__ == "__main__":
    main()
