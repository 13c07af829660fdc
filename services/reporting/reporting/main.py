"""Reporting service entry point: gRPC API plus the event consumer."""

from __future__ import annotations

from functools import partial

from timetracking.reporting.v1 import reporting_pb2, reporting_pb2_grpc
from tt_common.db import driver_pool_from_settings, engine_from_settings, ping, session_factory
from tt_common.grpc_server import GrpcServiceRunner, run_service
from tt_common.kafka import BatchConsumer, dead_letter_limit, ensure_topics

from . import consumers
from .config import ReportingSettings
from .grpc_api import ReportingApi
from .service import TimesheetService
from .timesheet_statements import TimesheetStatements


async def serve(settings: ReportingSettings) -> None:
    engine = engine_from_settings(settings)
    sessions = session_factory(engine)
    driver_pool = driver_pool_from_settings(settings)

    async def consume() -> None:
        # The topics it reads follow their producers' limits; its dead letters carry their records.
        await ensure_topics(
            settings.kafka_bootstrap_servers,
            [settings.topic_entries, settings.topic_directory, settings.topic_system],
        )
        await ensure_topics(
            settings.kafka_bootstrap_servers,
            [settings.topic_dead_letter],
            max_message_bytes=dead_letter_limit(settings.kafka_max_message_bytes),
        )
        await BatchConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=settings.consumer_group,
            topics=[settings.topic_entries, settings.topic_directory, settings.topic_system],
            sessions=sessions,
            decode=consumers.decoder_for(settings),
            handle_batch=consumers.handle_batch,
            dead_letter_topic=settings.topic_dead_letter,
            max_batch=settings.consumer_max_batch,
            max_wait_ms=settings.consumer_max_wait_ms,
            max_message_bytes=settings.kafka_max_message_bytes,
        ).run()

    runner = GrpcServiceRunner(settings)
    runner.add_servicer(
        reporting_pb2_grpc.add_ReportingServiceServicer_to_server,
        ReportingApi(sessions, TimesheetService(TimesheetStatements(driver_pool))),
        reporting_pb2.DESCRIPTOR.services_by_name["ReportingService"].full_name,
    )
    runner.add_worker("event-consumer", consume)
    runner.add_readiness_check("postgresql", partial(ping, engine))
    runner.on_shutdown(engine.dispose)
    runner.on_shutdown(driver_pool.close)
    await runner.serve()


def main() -> None:
    run_service(ReportingSettings, serve)


if __name__ == "__main__":
    main()
