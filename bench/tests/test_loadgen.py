"""The Go load generator (bench/loadgen) against small real gRPC and HTTP servers: it counts what
it measures.

Built with the machine's Go toolchain (the first build fetches grpc-go from the module proxy); the
suite needs Go anyway (the local runner builds helm and kubeconform with it).
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchkit import build_loadgen, go_loadgen

SERVICE = "bench.test.Timers"
PAYLOAD = b"\x0a\x04user"


@pytest.fixture(scope="module")
def loadgen() -> Path:
    binary = build_loadgen()
    assert binary is not None and binary.exists()
    return binary


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Counter[str]]]:
    """Start answers OK, Busy ALREADY_EXISTS, Stop OK; every method's calls are counted, and
    every request must arrive as the bytes the plan gave."""
    hits: Counter[str] = Counter()
    lock = threading.Lock()  # the server's threads count together

    def method(name: str, code: grpc.StatusCode | None = None) -> grpc.RpcMethodHandler:
        def handle(request: bytes, context: grpc.ServicerContext) -> bytes:
            with lock:
                hits[name] += 1
            if request != PAYLOAD:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unexpected bytes {request!r}")
            if code is not None:
                context.abort(code, name)
            return b""

        return grpc.unary_unary_rpc_method_handler(handle)  # no serializers: raw bytes both ways

    handlers = {"Start": method("Start"), "Busy": method("Busy", grpc.StatusCode.ALREADY_EXISTS)}
    handlers["Stop"] = method("Stop")
    grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    grpc_server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = grpc_server.add_insecure_port("127.0.0.1:0")
    grpc_server.start()
    yield f"127.0.0.1:{port}", hits
    grpc_server.stop(None)


def plan(target: str, first: str, users: int = 3) -> dict:
    def call(name: str) -> dict:
        return {"name": name.lower(), "method": f"/{SERVICE}/{name}", "body": PAYLOAD}

    return {
        "target": target,
        "connections": 2,
        "duration_s": 1.0,
        "warmup_s": 0.3,
        "timeout_s": 5,
        "users": [{"calls": [call(first), call("Stop")], "recover": call("Stop")} for _ in range(users)],
    }


def test_cycles_are_timed_per_call_and_warm_up_is_left_out(
    loadgen: Path, server: tuple[str, Counter[str]]
) -> None:
    target, hits = server
    hits.clear()
    out = asyncio.run(go_loadgen(loadgen, plan(target, "Start")))
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
    assert hits["Start"] == hits["Stop"] == out["all_cycles"] > out["cycles"]
    assert out["cpu_s"] > 0


def test_failures_are_counted_by_code_and_recovered(loadgen: Path, server: tuple[str, Counter[str]]) -> None:
    target, hits = server
    hits.clear()
    out = asyncio.run(go_loadgen(loadgen, plan(target, "Busy", users=2)))
    assert out["cycles"] == 0 and out["latency_ms"] == {}
    assert out["errors"]["AlreadyExists"] == hits["Busy"] > 0
    assert hits["Stop"] == hits["Busy"]  # the recovery call after each failure


@pytest.fixture(scope="module")
def http_server() -> Iterator[tuple[str, Counter[str]]]:
    """POST /start answers 201 and /stop 200 when the caller's token and JSON body arrived as the
    plan gave them, /busy answers 409; every path's requests are counted."""
    hits: Counter[str] = Counter()
    lock = threading.Lock()  # the server's threads count together

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the gateway

        def do_POST(self) -> None:
            with lock:
                hits[self.path] += 1
                hits[f"connection {self.client_address[1]}"] += 1
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status = {"/start": 201, "/stop": 200, "/busy": 409}.get(self.path, 404)
            if self.headers.get("Authorization") != "Bearer t0k3n":
                status = 401
            elif self.path == "/start" and (
                json.loads(body) != {"project_id": "p1"} or self.headers["Content-Type"] != "application/json"
            ):
                status = 422
            reply = b'{"ok": true}'
            self.send_response(status)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}", hits
    httpd.shutdown()
    httpd.server_close()


def http_plan(target: str, first: str, token: str = "t0k3n", users: int = 3) -> dict:
    headers = {"Authorization": f"Bearer {token}"}
    stop = {"name": "stop", "method": "POST", "path": "/stop", "status": 200, "headers": headers}
    start = {
        "name": "start",
        "method": "POST",
        "path": f"/{first}",
        "body": json.dumps({"project_id": "p1"}).encode(),
        "status": 201,
        "headers": headers,
    }
    return {
        "protocol": "http",
        "target": target,
        "connections": users,
        "duration_s": 1.0,
        "warmup_s": 0.3,
        "timeout_s": 5,
        "users": [{"calls": [start, stop], "recover": stop} for _ in range(users)],
    }


def test_http_cycles_send_the_plans_requests_and_count_the_expected_status(
    loadgen: Path, http_server: tuple[str, Counter[str]]
) -> None:
    target, hits = http_server
    hits.clear()
    out = asyncio.run(go_loadgen(loadgen, http_plan(target, "start")))
    assert out["errors"] == {}
    assert out["cycles"] > 10
    assert len(out["latency_ms"]["start"]) == len(out["latency_ms"]["stop"]) == out["cycles"]
    assert hits["/start"] == hits["/stop"] == out["all_cycles"] > out["cycles"]
    # Each user kept one keep-alive connection: replies were read to the end.
    assert len([k for k in hits if k.startswith("connection ")]) == 3


def test_http_answers_other_than_expected_are_errors_and_recovered(
    loadgen: Path, http_server: tuple[str, Counter[str]]
) -> None:
    target, hits = http_server
    hits.clear()
    out = asyncio.run(go_loadgen(loadgen, http_plan(target, "busy", users=2)))
    assert out["cycles"] == 0 and out["latency_ms"] == {}
    assert out["errors"] == {"start: HTTP 409": hits["/busy"]}
    assert hits["/stop"] == hits["/busy"] > 0  # the recovery call after each failure

    hits.clear()
    out = asyncio.run(go_loadgen(loadgen, http_plan(target, "start", token="wrong", users=1)))
    assert out["cycles"] == 0
    assert out["errors"] == {"start: HTTP 401": hits["/start"]}
