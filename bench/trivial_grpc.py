"""The timers' framework ceiling: grpc.aio on uvloop, as the services run it, with empty handlers.

StartTimer and StopTimer answer at once with a fixed, realistic response (a full
TimeEntry): no validation, no Redis, no database, no interceptors. Whatever this
costs per call, and whatever latency spread it shows at a given concurrency, no
Python service built on grpc.aio can beat on this machine. bench/tracking_timers.py
drives it with the same load generator and plan as tracking, in the same run:

    .venv/bin/python bench/trivial_grpc.py --port 8998
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import uuid
from datetime import UTC, datetime

import grpc
import uvloop

from timetracking.tracking.v1 import tracking_pb2 as tpb

SERVICE = "timetracking.tracking.v1.TrackingService"


def canned_entry() -> tpb.TimeEntry:
    entry = tpb.TimeEntry(
        entry_id=str(uuid.uuid4()),
        user_id=str(uuid.uuid4()),
        project_id=str(uuid.uuid4()),
        description="bench",
        is_billable=True,
        version=1,
    )
    entry.start_time.FromDatetime(datetime.now(UTC))
    return entry


async def serve(port: int) -> None:
    started = canned_entry().SerializeToString()
    stopped = tpb.StopTimerResponse(entry=canned_entry(), discarded=True).SerializeToString()

    def answer(response: bytes) -> grpc.RpcMethodHandler:
        async def handle(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            return response

        return grpc.unary_unary_rpc_method_handler(handle)  # raw bytes both ways

    server = grpc.aio.server()
    handlers = {"StartTimer": answer(started), "StopTimer": answer(stopped)}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    await server.stop(None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    uvloop.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
