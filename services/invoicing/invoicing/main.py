"""The invoicing service's entry point."""

from __future__ import annotations

from functools import partial

from timetracking.invoicing.v1 import invoicing_pb2, invoicing_pb2_grpc
from tt_common.db import engine_from_settings, ping
from tt_common.grpc_server import GrpcServiceRunner, run_service

from .config import InvoicingSettings
from .grpc_api import InvoicingApi


async def serve(settings: InvoicingSettings) -> None:
    engine = engine_from_settings(settings)
    runner = GrpcServiceRunner(settings)
    runner.add_servicer(
        invoicing_pb2_grpc.add_InvoicingServiceServicer_to_server,
        InvoicingApi(),
        invoicing_pb2.DESCRIPTOR.services_by_name["InvoicingService"].full_name,
    )
    runner.add_readiness_check("postgresql", partial(ping, engine))
    runner.on_shutdown(engine.dispose)
    await runner.serve()


def main() -> None:
    run_service(InvoicingSettings, serve)


if __name__ == "__main__":
    main()
