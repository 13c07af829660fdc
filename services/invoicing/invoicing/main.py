"""Invoicing's entry point: gRPC API, outbox relay, reconciler and overdue scheduler."""

from __future__ import annotations

from functools import partial

from timetracking.invoicing.v1 import invoicing_pb2, invoicing_pb2_grpc
from tt_common.db import engine_from_settings, ping, session_factory
from tt_common.grpc_server import GrpcServiceRunner, run_service
from tt_common.outbox import run_relay

from .config import InvoicingSettings
from .dependencies import Dependencies
from .generation import InvoiceGenerator
from .grpc_api import InvoicingApi
from .lifecycle import Lifecycle
from .models import outbox
from .pdf import PdfRenderer
from .recovery import Reconciler
from .storage import PdfStore


async def serve(settings: InvoicingSettings) -> None:
    engine = engine_from_settings(settings)
    sessions = session_factory(engine)
    deps = Dependencies(settings)
    renderer = PdfRenderer(settings.pdf_workers)
    generator = InvoiceGenerator(settings, sessions, deps)
    lifecycle = Lifecycle(settings, sessions, deps, renderer, PdfStore(settings))
    reconciler = Reconciler(settings, sessions, generator, lifecycle)

    runner = GrpcServiceRunner(settings)
    runner.add_servicer(
        invoicing_pb2_grpc.add_InvoicingServiceServicer_to_server,
        InvoicingApi(sessions, generator, lifecycle),
        invoicing_pb2.DESCRIPTOR.services_by_name["InvoicingService"].full_name,
    )
    runner.add_worker(
        "outbox-relay",
        partial(
            run_relay,
            settings,
            sessions,
            outbox,
            topics=[settings.topic_invoices],
            client_id="invoicing-outbox",
        ),
    )
    runner.add_worker("reconciler", reconciler.run)
    runner.add_worker("overdue-scheduler", reconciler.run_overdue)
    runner.add_readiness_check("postgresql", partial(ping, engine))

    async def shutdown() -> None:
        renderer.close()
        await deps.close()
        await engine.dispose()

    runner.on_shutdown(shutdown)
    await runner.serve()


def main() -> None:
    run_service(InvoicingSettings, serve)


if __name__ == "__main__":
    main()
