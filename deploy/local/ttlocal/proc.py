"""Start, find and stop the stack's processes by pid file, never by name."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .config import StackConfig


class StartupError(RuntimeError):
    """A component did not become ready; the message points at its log."""


def log(msg: str) -> None:
    print(f"[ttlocal] {msg}", flush=True)


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); treat it as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().split(") ", 1)[1][0] != "Z":
                return True
        # The main thread shows Z as soon as it exits, while other threads may
        # still run: a JVM spends its last ~30ms of exit like that. Only a
        # process with no thread left is really gone.
        return len(os.listdir(f"/proc/{pid}/task")) > 1
    except (FileNotFoundError, IndexError):
        return False


def running_pid(cfg: StackConfig, name: str) -> int | None:
    """The pid recorded for `name` if that process is still alive."""
    pid = read_pid(cfg.pid_file(name))
    if pid is not None and pid_alive(pid):
        return pid
    return None


def spawn(
    cfg: StackConfig,
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
) -> int:
    """Start `argv` detached in its own session, log to logs/<name>.log, record its pid."""
    cfg.ensure_dirs()
    log_path = cfg.log_file(name)
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=str(cwd) if cwd else None,
            start_new_session=True,
            user=user,
            group=user,
            extra_groups=[] if user else None,
        )
    cfg.pid_file(name).write_text(f"{proc.pid}\n")
    return proc.pid


def stop(cfg: StackConfig, name: str, timeout: float = 30.0, sig: int = signal.SIGTERM) -> bool:
    """Stop the process recorded in `name`'s pid file; SIGKILL after `timeout`.

    Returns True when something was stopped.
    """
    pid_file = cfg.pid_file(name)
    pid = read_pid(pid_file)
    if pid is None or not pid_alive(pid):
        pid_file.unlink(missing_ok=True)
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.1)
    if pid_alive(pid):
        log(f"{name} (pid {pid}) ignored SIGTERM for {timeout:.0f}s; killing its process group")
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        while pid_alive(pid):
            time.sleep(0.05)
    pid_file.unlink(missing_ok=True)
    return True


def kill(cfg: StackConfig, name: str, timeout: float = 30.0) -> int:
    """SIGKILL the process recorded for `name` (a crash, not a shutdown) and wait until it is gone.

    Returns the killed pid; fails when `name` is not running. The pid file is removed, so a
    later start of the component starts a fresh process.
    """
    pid = running_pid(cfg, name)
    if pid is None:
        raise StartupError(f"{name} is not running; nothing to kill")
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            raise StartupError(f"{name} (pid {pid}) still alive {timeout:.0f}s after SIGKILL")
        time.sleep(0.05)
    cfg.pid_file(name).unlink(missing_ok=True)
    log(f"{name} (pid {pid}) killed")
    return pid


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def wait_until(
    check: Callable[[], bool],
    what: str,
    timeout: float,
    *,
    cfg: StackConfig | None = None,
    name: str | None = None,
    interval: float = 0.25,
) -> None:
    """Poll `check` until it is true; fail with the tail of the component's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - readiness probes fail in many ways while starting
            pass
        if cfg is not None and name is not None and cfg.pid_file(name).exists():
            if running_pid(cfg, name) is None:
                raise StartupError(f"{what}: process exited.\n{tail(cfg.log_file(name))}")
        time.sleep(interval)
    detail = tail(cfg.log_file(name)) if cfg is not None and name is not None else ""
    raise StartupError(f"{what}: not ready after {timeout:.0f}s.\n{detail}")


def tail(path: Path, lines: int = 30) -> str:
    try:
        content = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return f"(no log at {path})"
    return f"--- last lines of {path} ---\n" + "\n".join(content[-lines:])


def run(
    argv: Sequence[str], *, user: str | None = None, check: bool = True, **kw
) -> subprocess.CompletedProcess:
    """Run a short command to completion (optionally as another user)."""
    if user is not None:
        argv = ["runuser", "-u", user, "--", *argv]
    return subprocess.run(list(argv), check=check, text=True, capture_output=True, **kw)
