"""A single-node Apache Kafka (KRaft, broker and controller in one JVM).

The broker comes from Maven Central rather than the release tarball: the jars
listed in deploy/local/kafka/pom.xml are copied into one shared cache
directory and run with plain `java -cp`. Every function here is idempotent.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import os
import shutil
import socket
import struct
import subprocess
import time
import uuid
from pathlib import Path

from . import proc
from .config import REPO_ROOT, StackConfig
from .proc import StartupError

NAME = "kafka"
NODE_ID = 1
KAFKA_DIR = REPO_ROOT / "deploy" / "local" / "kafka"
POM = KAFKA_DIR / "pom.xml"
LOG4J_CONFIG = KAFKA_DIR / "log4j2.xml"
START_TIMEOUT = 90.0

# -Xms/-Xmx sized for a laptop or a 2-core CI box; the GC flags are the ones
# Kafka's own kafka-run-class.sh uses.
JVM_OPTS = [
    "-Xms256m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
]


# --- install ---------------------------------------------------------------
def libs_dir(cfg: StackConfig) -> Path:
    return cfg.cache_dir / "kafka-libs"


def _pom_hash() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()


def install(cfg: StackConfig) -> None:
    """Resolve the broker's jars into the shared cache unless the pom is unchanged."""
    libs = libs_dir(cfg)
    marker = libs / ".installed"
    wanted = _pom_hash()
    cfg.ensure_dirs()
    # The cache is shared by the dev and test profiles, which may start at once.
    with open(cfg.cache_dir / "kafka-libs.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists() and marker.read_text().strip() == wanted:
            return
        mvn = shutil.which("mvn")
        if mvn is None:
            raise StartupError("mvn not found on PATH; Maven is needed to fetch Kafka's jars")
        # Copy into a fresh directory and swap it in: the classpath is `libs/*`,
        # so jars left over from an older pom would end up on it too.
        staging = libs.with_name(libs.name + ".new")
        shutil.rmtree(staging, ignore_errors=True)
        proc.log(f"fetching Kafka's jars with Maven into {libs}")
        started = time.monotonic()
        result = subprocess.run(
            [
                mvn,
                "-B",
                "-q",
                "-f",
                str(POM),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={staging}",
                "-DincludeScope=runtime",
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise StartupError(f"mvn dependency:copy-dependencies failed:\n{result.stdout}{result.stderr}")
        (staging / ".installed").write_text(wanted + "\n")
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
        proc.log(f"Kafka's jars fetched in {time.monotonic() - started:.0f}s")


# --- configuration and storage ------------------------------------------------
def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise StartupError("java not found (set JAVA_HOME or put java on PATH); Kafka 4 needs Java 17+")
    return java


def _java_cmd(cfg: StackConfig, main_class: str, *args: str) -> list[str]:
    return [
        _java(),
        *JVM_OPTS,
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
        "-cp",
        f"{libs_dir(cfg)}/*",
        main_class,
        *args,
    ]


def _kraft_dir(cfg: StackConfig) -> Path:
    return cfg.data_dir(NAME) / "kraft"


def _write_server_properties(cfg: StackConfig) -> Path:
    """(Re)write server.properties each start, so port overrides take effect."""
    port, controller_port = cfg.port("kafka"), cfg.port("kafka_controller")
    props = {
        "process.roles": "broker,controller",
        "node.id": NODE_ID,
        # A static voter set rather than controller.quorum.bootstrap.servers +
        # `format --standalone`: a dynamic quorum stores the controller's
        # endpoint in the formatted metadata, so a later TT_KAFKA_CONTROLLER_PORT
        # change would leave it pointing at the old port.
        "controller.quorum.voters": f"{NODE_ID}@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": _kraft_dir(cfg),
        "num.partitions": 3,
        "auto.create.topics.enable": "true",
        # One broker: every internal topic must make do with one replica.
        "offsets.topic.replication.factor": 1,
        # Fewer offsets partitions than the default 50: a single-node broker creates them faster.
        "offsets.topic.num.partitions": 5,
        "transaction.state.log.replication.factor": 1,
        "transaction.state.log.min.isr": 1,
        "share.coordinator.state.topic.replication.factor": 1,
        "share.coordinator.state.topic.min.isr": 1,
        # Consumers in tests should not wait 3s for a group's first rebalance.
        "group.initial.rebalance.delay.ms": 0,
    }
    path = cfg.data_dir(NAME) / "server.properties"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    return path


def _random_cluster_id() -> str:
    """What `kafka-storage random-uuid` prints, without starting a JVM for it."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        # Kafka's Uuid.randomUuid() skips ids starting with '-': CLIs take them for flags.
        if not cid.startswith("-"):
            return cid


def _format_storage_once(cfg: StackConfig, server_properties: Path) -> None:
    """KRaft refuses to start on an unformatted log dir; format it only the first time."""
    if (_kraft_dir(cfg) / "meta.properties").exists():
        return
    cluster_id = _random_cluster_id()
    argv = _java_cmd(cfg, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(server_properties))
    result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if result.returncode != 0:
        raise StartupError(f"formatting Kafka's storage failed:\n{result.stdout}{result.stderr}")
    proc.log(f"formatted Kafka storage in {_kraft_dir(cfg)} (cluster id {cluster_id})")


# --- readiness -------------------------------------------------------------------
def _api_versions_answered(port: int, timeout: float = 2.0) -> bool:
    """Send a raw ApiVersions v0 request and check that a Kafka answer comes back.

    An open port alone could be some other program, or a wedged broker. An
    ApiVersions answer (the handshake every client starts with) proves that
    the broker is processing requests, which it does only once it has joined
    its one-node quorum and been unfenced. No client library needed.
    """
    correlation_id = 0x7474  # arbitrary
    client_id = b"ttlocal"
    # Request header v1: api_key=18 (ApiVersions), api_version=0, correlation id,
    # client id as an int16-length string; the v0 body is empty.
    request = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(struct.pack(">i", len(request)) + request)
        head = _recv_exact(s, 10)
    _size, got_id, error_code = struct.unpack(">iih", head)
    # 35 (UNSUPPORTED_VERSION) would still be the broker itself answering, should
    # some future Kafka drop ApiVersions v0.
    return got_id == correlation_id and error_code in (0, 35)


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by the broker")
        buf += chunk
    return buf


def ready(cfg: StackConfig) -> bool:
    port = cfg.port("kafka")
    if not proc.port_open(port):
        return False
    try:
        return _api_versions_answered(port)
    except (OSError, struct.error):
        return False


# --- lifecycle ---------------------------------------------------------------
def start(cfg: StackConfig) -> None:
    if proc.running_pid(cfg, NAME) is not None:
        # Ours and alive: ready, or still starting (a concurrent `up`), so wait
        # rather than start a second JVM on the same log dir.
        proc.wait_until(lambda: ready(cfg), "kafka", START_TIMEOUT, cfg=cfg, name=NAME)
        proc.log(f"kafka already running on {cfg.kafka_bootstrap}")
        return
    for port_name in ("kafka", "kafka_controller"):
        if proc.port_open(cfg.port(port_name)):
            raise StartupError(
                f"port {cfg.port(port_name)} ({port_name}) is taken by a process this runner did not start; "
                "stop it or give the stack another port (see ttlocal/config.py)"
            )
    install(cfg)
    server_properties = _write_server_properties(cfg)
    _format_storage_once(cfg, server_properties)
    started = time.monotonic()
    pid = proc.spawn(cfg, NAME, _java_cmd(cfg, "kafka.Kafka", str(server_properties)), cwd=cfg.data_dir(NAME))
    proc.log(f"kafka starting (pid {pid}), log at {cfg.log_file(NAME)}")
    proc.wait_until(lambda: ready(cfg), "kafka", START_TIMEOUT, cfg=cfg, name=NAME)
    proc.log(f"kafka ready on {cfg.kafka_bootstrap} after {time.monotonic() - started:.1f}s")


def stop(cfg: StackConfig) -> bool:
    # A clean shutdown flushes and closes every partition; give it time before SIGKILL.
    stopped = proc.stop(cfg, NAME, timeout=60)
    if stopped:
        proc.log("kafka stopped")
    return stopped
