"""Redis 7 from Debian's redis-server, on loopback only."""

from __future__ import annotations

import shutil
import socket

from . import proc
from .config import StackConfig
from .postgres import apt_install


def install(cfg: StackConfig) -> None:
    if not shutil.which("redis-server"):
        apt_install(["redis-server"])


def ready(cfg: StackConfig) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", cfg.port("redis")), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start(cfg: StackConfig) -> None:
    if proc.running_pid(cfg, "redis") and ready(cfg):
        proc.log(f"redis already running on 127.0.0.1:{cfg.port('redis')}")
        return
    if proc.port_open(cfg.port("redis")):
        raise proc.StartupError(f"port {cfg.port('redis')} is taken by a process this stack did not start")
    data = cfg.data_dir("redis")
    data.mkdir(parents=True, exist_ok=True)
    proc.spawn(
        cfg,
        "redis",
        [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(cfg.port("redis")),
            "--bind",
            "127.0.0.1",
            "--protected-mode",
            "yes",
            "--daemonize",
            "no",
            "--dir",
            str(data),
            "--appendonly",
            "yes" if cfg.profile == "dev" else "no",
            "--save",
            "",
            "--loglevel",
            "warning",
        ],
    )
    proc.wait_until(lambda: ready(cfg), "redis", 30, cfg=cfg, name="redis")
    proc.log(f"redis ready on 127.0.0.1:{cfg.port('redis')}")


def stop(cfg: StackConfig) -> None:
    if proc.stop(cfg, "redis", timeout=20):
        proc.log("redis stopped")
