"""Tracking service entry point: gRPC API plus the outbox relay."""

from __future__ import annotations

from functools import partial

from timetracking.tracking.v1 import tracking_pb2, tracking_pb2_grpc
from tt_common.db import engine_from_settings, ping, session_factory
from tt_common.grpc_server import GrpcServiceRunner, run_service
from tt_common.kafka import ensure_topics, make_producer
from tt_common.outbox import OutboxRelay

from .config import TrackingSettings
from .grpc_api import TrackingApi
from .models import outbox


async def serve(settings: TrackingSettings) -> None:
    engine = engine_from_settings(settings)
    sessions = session_factory(engine)

    async def relay() -> None:
        # A fresh producer per attempt: one whose start failed (Kafka down) is not reusable.
        await ensure_topics(settings.kafka_bootstrap_servers, [settings.topic_entries, settings.topic_system])
        producer = make_producer(settings.kafka_bootstrap_servers, "tracking-outbox")
        await producer.start()
        try:
            await OutboxRelay(
                sessions=sessions, table=outbox, producer=producer, listen_dsn=settings.database_url
            ).run()
        finally:
            await producer.stop()

    runner = GrpcServiceRunner(settings)
    runner.add_servicer(
        tracking_pb2_grpc.add_TrackingServiceServicer_to_server,
        TrackingApi(settings, sessions),
        tracking_pb2.DESCRIPTOR.services_by_name["TrackingService"].full_name,
    )
    runner.add_worker("outbox-relay", relay)
    runner.add_readiness_check("postgresql", partial(ping, engine))
    runner.on_shutdown(engine.dispose)
    await runner.serve()


def main() -> None:
    run_service(TrackingSettings, serve)


if __name__ == "__main__":
    main()
