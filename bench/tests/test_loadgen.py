"""The Go load generator (bench/loadgen) against small real servers: it counts what it measures.

Built with the machine's Go toolchain (the first build fetches grpc-go from the module proxy).
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchkit import build_loadgen, go_loadgen

pytestmark = pytest.mark.skipif(shutil.which("go") is None, reason="no Go toolchain on PATH")


@pytest.fixture(scope="module")
def loadgen() -> Path:
    binary = build_loadgen()
    assert binary is not None and binary.exists()
    return binary


@pytest.fixture(scope="module")
def http_server() -> Iterator[tuple[str, Counter[str]]]:
    """POST /start answers 201, /stop 200, /busy 409; every path's hits are counted."""
    hits: Counter[str] = Counter()
    statuses = {"/start": 201, "/stop": 200, "/busy": 409}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            hits[self.path] += 1
            if self.path == "/start":
                assert body == b'{"project_id": "p"}' and self.headers["Authorization"] == "Bearer t"
            reply = b"{}"
            self.send_response(statuses.get(self.path, 404))
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()
    server.server_close()


def http_plan(base: str, first: str, users: int = 3) -> dict:
    headers = {"Authorization": "Bearer t", "Content-Type": "application/json"}
    stop = {"name": "stop", "method": "POST", "path": "/stop", "headers": headers, "ok": [200]}
    start = {
        "name": "start",
        "method": "POST",
        "path": first,
        "body": b'{"project_id": "p"}',
        "headers": headers,
        "ok": [201],
    }
    return {
        "protocol": "http",
        "target": base,
        "duration_s": 1.0,
        "warmup_s": 0.3,
        "timeout_s": 5,
        "users": [{"calls": [start, stop], "recover": stop} for _ in range(users)],
    }


def test_http_cycles_are_timed_per_call_and_warm_up_is_left_out(
    loadgen: Path, http_server: tuple[str, Counter[str]]
) -> None:
    base, hits = http_server
    hits.clear()
    out = asyncio.run(go_loadgen(loadgen, http_plan(base, "/start")))
    assert out["errors"] == {}
    assert out["cycles"] > 10
    assert (
        len(out["latency_ms"]["start"])
        == len(out["latency_ms"]["stop"])
        == len(out["cycle_ms"])
        == out["cycles"]
    )
    assert all(ms > 0 for ms in out["cycle_ms"])
    # The warm-up's cycles ran (the server saw them) but are not among the measured ones.
    assert hits["/start"] == hits["/stop"] == out["all_cycles"] > out["cycles"]
    assert out["cpu_s"] > 0


def test_http_failures_are_counted_by_status_and_recovered(
    loadgen: Path, http_server: tuple[str, Counter[str]]
) -> None:
    base, hits = http_server
    hits.clear()
    out = asyncio.run(go_loadgen(loadgen, http_plan(base, "/busy", users=2)))
    assert out["cycles"] == 0 and out["latency_ms"] == {}
    assert out["errors"]["409"] == hits["/busy"] > 0
    assert hits["/stop"] == hits["/busy"]  # the recovery call after each failure


def test_grpc_calls_pass_encoded_requests_through_and_name_failed_codes(loadgen: Path) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    servicer = health.HealthServicer()
    servicer.set("up", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:

        def plan(service: str) -> dict:
            check = {
                "name": "check",
                "method": "/grpc.health.v1.Health/Check",
                "body": health_pb2.HealthCheckRequest(service=service).SerializeToString(),
            }
            return {
                "protocol": "grpc",
                "target": f"127.0.0.1:{port}",
                "connections": 2,
                "duration_s": 0.7,
                "warmup_s": 0.2,
                "timeout_s": 5,
                "users": [{"calls": [check]} for _ in range(4)],
            }

        ok = asyncio.run(go_loadgen(loadgen, plan("up")))
        assert ok["errors"] == {} and ok["cycles"] > 10 and len(ok["latency_ms"]["check"]) == ok["cycles"]
        unknown = asyncio.run(go_loadgen(loadgen, plan("no-such-service")))
        assert unknown["cycles"] == 0 and unknown["errors"]["NotFound"] > 0
    finally:
        server.stop(None)
