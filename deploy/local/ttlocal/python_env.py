"""The project's Python environment: uv, the locked workspace, generated protos."""

from __future__ import annotations

import ctypes.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

from . import proc
from .config import StackConfig
from .postgres import apt_install

UV_VERSION = "0.13.9"


def venv_python(cfg: StackConfig) -> Path:
    return cfg.root / ".venv" / "bin" / "python"


def _uv() -> str:
    found = shutil.which("uv")
    if found:
        return found
    proc.log(f"installing uv {UV_VERSION} from PyPI")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"uv=={UV_VERSION}"], check=True)
    return shutil.which("uv") or str(Path(sys.executable).parent / "uv")


def install(cfg: StackConfig) -> None:
    """Sync the locked workspace into .venv and generate the protobuf stubs."""
    env = {
        **os.environ,
        "UV_PYTHON": os.environ.get("UV_PYTHON", "python3.11"),
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_LINK_MODE": "copy",
    }
    # Bytecode compiled once here (~13 s the first time, well under a second after): a shell with
    # PYTHONDONTWRITEBYTECODE set, as CI's may be, otherwise compiles every import in every process
    # it starts (~2-3 s of CPU per service start, and a PDF worker's first invoice). The image
    # does the same (UV_COMPILE_BYTECODE).
    sync = [_uv(), "sync", "--frozen", "--quiet", "--compile-bytecode"]
    subprocess.run(sync, cwd=cfg.root, env=env, check=True)
    subprocess.run(
        [str(venv_python(cfg)), "libs/protos/generate.py"],
        cwd=cfg.root,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    pdf_libraries()


def pdf_libraries() -> None:
    """HarfBuzz's subsetter, which WeasyPrint uses for the invoice PDFs' fonts when present.

    Without it WeasyPrint falls back to fontTools (with a warning), ~0.7 s of CPU more per PDF.
    """
    if ctypes.util.find_library("harfbuzz-subset"):
        return
    if shutil.which("apt-get"):
        apt_install(["libharfbuzz-subset0"])
    else:
        proc.log("HarfBuzz-Subset not found: invoice PDFs subset fonts with fontTools (slower)")
